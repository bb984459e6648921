package plugin

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-tele/kubectl-tele/pkg/session"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
	"github.com/kubectl-tele/kubectl-tele/pkg/version"
)

// VersionOptions holds the flags of kubectl tele version.
type VersionOptions struct {
	Streams genericiooptions.IOStreams
}

// NewCmdVersion builds kubectl tele version.
func NewCmdVersion(_ *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &VersionOptions{Streams: streams}
	return &cobra.Command{
		Use:   "version",
		Short: "Print the client version, its protocol, the image it deploys, and the connected manager's version",
		Long: `Print the client version, the protocol it speaks with the traffic manager,
the image it deploys, and, while connected, the daemon's and manager's
versions. A client can use a manager of another version that speaks its
protocol; a manager of another protocol is replaced by connect if it has no
session, and otherwise refused, naming the version to connect with.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.Run(cmd.Context()) },
	}
}

// Run prints the versions; the daemon's and manager's only while connected.
func (o *VersionOptions) Run(ctx context.Context) error {
	fmt.Fprintf(o.Streams.Out, "Client Version: %s\nProtocol: %d\nImage: %s\n", version.Version, int32(teleproto.CurrentProtocolVersion), version.Image())
	paths, err := session.DefaultPaths()
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ctl := session.NewControl(paths.ControlSocket())
	defer ctl.Close()
	st, err := ctl.Status(ctx)
	if err != nil {
		return nil
	}
	if st.GetClientVersion() != "" {
		fmt.Fprintf(o.Streams.Out, "Daemon Version: %s (PID %d)\n", st.GetClientVersion(), st.GetPid())
	}
	if st.GetManagerVersion() != "" {
		fmt.Fprintf(o.Streams.Out, "Manager Version: %s (%s/%s)\n", st.GetManagerVersion(), st.GetManagerNamespace(), st.GetManagerPod())
	}
	if w := daemonSkew(st); w != "" {
		fmt.Fprintf(o.Streams.ErrOut, "Warning: %s\n", w)
	}
	return nil
}

// daemonSkew says what to do when the running daemon was started by another
// build of kubectl-tele (the binary was upgraded or rebuilt since connect),
// or returns "" when they match. The daemon keeps running the old code until
// it is restarted, so what the user reads in --help may not be what runs.
func daemonSkew(st *teleproto.DaemonStatus) string {
	if st.GetClientVersion() == "" || st.GetClientVersion() == version.Version {
		return ""
	}
	return fmt.Sprintf("the daemon runs kubectl-tele %s but this binary is %s: run kubectl tele quit, then connect again to run this one",
		st.GetClientVersion(), version.Version)
}
