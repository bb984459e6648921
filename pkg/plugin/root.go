// Package plugin is the kubectl tele command line: cobra commands that take
// kubeconfig, context, namespace and impersonation from cli-runtime's
// ConfigFlags, as kubectl's own commands do.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// Exit codes: 1 for an error, 2 for bad usage (flags, arguments), and for
// what the daemon or the manager refused, by its gRPC code, 3 to 6.
const (
	exitError = 1
	exitUsage = 2
	// exitConflict: the request conflicts with what is there (an intercept
	// of that name or match; another version of the daemon or manager).
	exitConflict = 3
	// exitNotFound: no such intercept, workload or session.
	exitNotFound = 4
	// exitForbidden: Kubernetes RBAC or the owner of an intercept says no.
	exitForbidden = 5
	// exitUnavailable: the manager is not reachable now; try again.
	exitUnavailable = 6
)

// exitCode is the exit code of a command's error: a gRPC status from the
// daemon (the manager's, passed through) by its code.
func exitCode(err error) int {
	if ce := (commandExit{}); errors.As(err, &ce) {
		return ce.code
	}
	if errors.As(err, new(usageError)) {
		return exitUsage
	}
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return exitError
	}
	switch se.GRPCStatus().Code() {
	case codes.AlreadyExists, codes.FailedPrecondition, codes.Aborted:
		return exitConflict
	case codes.NotFound:
		return exitNotFound
	case codes.PermissionDenied, codes.Unauthenticated:
		return exitForbidden
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return exitUnavailable
	case codes.InvalidArgument, codes.OutOfRange:
		return exitUsage
	}
	return exitError
}

// usageError marks an error the user fixes by changing the command line.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// Execute runs the command line args and returns the process exit code.
// inCluster are the hidden commands of the programs that run in the
// cluster (manager, agent), which main adds so that this package, the
// laptop's, does not import them.
func Execute(ctx context.Context, args []string, inCluster ...*cobra.Command) int {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	cmd := NewRootCmd(streams)
	cmd.AddCommand(inCluster...)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	// intercept -- CMD exits as CMD did, which said what went wrong itself.
	if errors.As(err, new(commandExit)) {
		return exitCode(err)
	}
	fmt.Fprintln(streams.ErrOut, "error:", errorText(err))
	return exitCode(err)
}

// errorText is what the user reads of err: a gRPC status's own message
// (the manager's words), without the "rpc error: code = ... desc =" frame.
func errorText(err error) string {
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return err.Error()
	}
	frame := se.(error).Error()
	return strings.Replace(err.Error(), frame, se.GRPCStatus().Message(), 1)
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
		NewCmdGatherLogs(flags, streams),
		NewCmdUninstall(flags, streams),
		NewCmdConfig(streams),
		NewCmdImage(streams),
		NewCmdCompletion(streams),
		newCmdDaemon(flags),
		newCmdHelper(),
	)
	registerCompletions(cmd, flags)
	return cmd
}
