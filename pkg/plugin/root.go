// Package plugin is the kubectl tele command line: cobra commands that take
// kubeconfig, context, namespace and impersonation from cli-runtime's
// ConfigFlags, as kubectl's own commands do.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// Exit codes: 1 for an error, 2 for bad usage (flags, arguments).
const (
	exitError = 1
	exitUsage = 2
)

// usageError marks an error the user fixes by changing the command line.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// Execute runs the command line args and returns the process exit code.
func Execute(ctx context.Context, args []string) int {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	cmd := NewRootCmd(streams)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	fmt.Fprintln(streams.ErrOut, "error:", err)
	if errors.As(err, new(usageError)) {
		return exitUsage
	}
	return exitError
}

// NewRootCmd builds kubectl tele with all its subcommands.
func NewRootCmd(streams genericiooptions.IOStreams) *cobra.Command {
	flags := genericclioptions.NewConfigFlags(true)
	cmd := &cobra.Command{
		Use:   "kubectl-tele",
		Short: "Put this machine inside a Kubernetes namespace",
		Long: `kubectl tele connects this machine to a namespace of a Kubernetes cluster:
local programs reach Services and pods by name, and intercepted workloads send
their requests to a process on this machine.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// kubectl runs plugins as kubectl-tele; show them as kubectl tele.
		Annotations: map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl tele"},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	flags.AddFlags(cmd.PersistentFlags())
	cmd.AddCommand(
		NewCmdVersion(flags, streams),
		NewCmdConnect(flags, streams),
		NewCmdStatus(flags, streams),
		NewCmdQuit(flags, streams),
		NewCmdIntercept(flags, streams),
		NewCmdWiretap(flags, streams),
		NewCmdLeave(flags, streams),
		NewCmdList(flags, streams),
		NewCmdUninstall(flags, streams),
		NewCmdConfig(streams),
		NewCmdImage(streams),
		NewCmdCompletion(streams),
		newCmdDaemon(flags),
		newCmdHelper(),
		newCmdManager(),
		newCmdAgent(),
	)
	registerCompletions(cmd, flags)
	return cmd
}
