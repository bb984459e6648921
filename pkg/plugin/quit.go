package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-tele/kubectl-tele/pkg/mount"
	"github.com/kubectl-tele/kubectl-tele/pkg/session"
)

// QuitOptions holds the flags of kubectl tele quit.
type QuitOptions struct {
	Streams genericiooptions.IOStreams
}

// NewCmdQuit builds kubectl tele quit.
func NewCmdQuit(_ *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &QuitOptions{Streams: streams}
	return &cobra.Command{
		Use:   "quit",
		Short: "End the session: its intercepts, the daemon, the TUN device and the DNS settings",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return o.Run(cmd.Context()) },
	}
}

// Run ends the session and restores the machine's network settings, also
// after a daemon that died.
func (o *QuitOptions) Run(ctx context.Context) error {
	paths, err := session.DefaultPaths()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ctl := session.NewControl(paths.ControlSocket())
	defer ctl.Close()
	err = ctl.Quit(ctx)
	running := !errors.Is(err, session.ErrNotRunning)
	if running && err != nil {
		return err
	}
	var repaired []string
	if running {
		err = runHelper(ctx, "down", nil, paths, o.Streams.ErrOut)
	} else {
		repaired, err = repairCrashed(ctx, paths, o.Streams.ErrOut)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(o.Streams.Out, quitMessage(running, repaired))
	return nil
}

// repairCrashed undoes what a session whose daemon died left on this machine
// (see leftovers: the resolver's saved settings, resolver files, the TUN
// device), through the privileged helper's "down", empties the --mount
// folders it kept (as the next connect's daemon would), and says what it
// repaired. Call it only when no daemon answers: a running session's
// settings are not leftovers. quit and status both repair this way.
func repairCrashed(ctx context.Context, paths session.Paths, errOut io.Writer) ([]string, error) {
	var repaired []string
	var err error
	if found := leftovers(); len(found) > 0 {
		if err = runHelper(ctx, "down", nil, paths, errOut); err != nil {
			err = fmt.Errorf("repair what a session that ended without quit left (%s): %w", strings.Join(found, "; "), err)
		} else {
			repaired = found
		}
	}
	cleared, merr := mount.CleanStale(paths.MountRecords())
	for _, dir := range cleared {
		repaired = append(repaired, "the --mount folder "+dir)
	}
	return repaired, errors.Join(err, merr)
}

// quitMessage says what quit did: ended the running session, or, with none
// running, repaired what an earlier one that died left (leftovers), or
// nothing at all.
func quitMessage(running bool, repaired []string) string {
	switch {
	case running:
		return "Disconnected: the TUN device and DNS settings are removed."
	case len(repaired) > 0:
		return "No session was running; repaired what an earlier session that ended without quit left: " + strings.Join(repaired, "; ") + "."
	}
	return "Not connected."
}
