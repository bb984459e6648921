package plugin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-tele/kubectl-tele/pkg/managerclient"
	"github.com/kubectl-tele/kubectl-tele/pkg/objects"
	"github.com/kubectl-tele/kubectl-tele/pkg/session"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// UninstallOptions holds the flags of kubectl tele uninstall.
type UninstallOptions struct {
	Flags   *genericclioptions.ConfigFlags
	Streams genericiooptions.IOStreams
}

// NewCmdUninstall builds kubectl tele uninstall.
func NewCmdUninstall(flags *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	o := &UninstallOptions{Flags: flags, Streams: streams}
	return &cobra.Command{
		Use:   "uninstall [-n NAMESPACE]",
		Short: "Remove the traffic manager and everything kubectl tele made in a namespace",
		Long: `Remove the traffic manager's Job, ServiceAccount, Role, RoleBinding, the
agents' Secrets (token and CA) and Service, and put back any Service a capability-free
intercept pointed at the agents. Agents already in pods do nothing, and exit
when a manager started by a later connect refuses their token (Kubernetes
cannot remove an ephemeral container, so it stays in the pod's spec, ended);
an intercept then adds a fresh agent, with no pod restarted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.Run(cmd.Context()) },
	}
}

// Run uninstalls.
func (o *UninstallOptions) Run(ctx context.Context) error {
	ns, _, err := o.Flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return err
	}
	if paths, err := session.DefaultPaths(); err == nil {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ctl := session.NewControl(paths.ControlSocket())
		st, err := ctl.Status(sctx)
		ctl.Close()
		cancel()
		if err == nil && st.ManagerNamespace == ns {
			return fmt.Errorf("this machine is connected to namespace %s: run kubectl tele quit first", ns)
		}
	}
	cfg, err := o.Flags.ToRESTConfig()
	if err != nil {
		return err
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	errs := []error{objects.RestoreServices(ctx, c, ns), managerclient.Remove(ctx, c, ns)}
	for _, del := range []struct {
		what string
		err  error
	}{
		{"secret " + objects.AgentSecret, c.CoreV1().Secrets(ns).Delete(ctx, objects.AgentSecret, metav1.DeleteOptions{})},
		// The next install makes a new CA; agents given this one refuse it.
		{"secret " + objects.AgentCASecret, c.CoreV1().Secrets(ns).Delete(ctx, objects.AgentCASecret, metav1.DeleteOptions{})},
		{"service " + teleproto.AgentServiceName, c.CoreV1().Services(ns).Delete(ctx, teleproto.AgentServiceName, metav1.DeleteOptions{})},
	} {
		if del.err != nil && !apierrors.IsNotFound(del.err) {
			errs = append(errs, fmt.Errorf("delete %s in namespace %s: %w", del.what, ns, del.err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintf(o.Streams.Out, "kubectl tele removed from namespace %s.\n", ns)
	return nil
}
