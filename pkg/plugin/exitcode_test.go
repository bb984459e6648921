package plugin

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubectl-tele/kubectl-tele/pkg/session"
)

// TestExitCode: what the manager (through the daemon) refused becomes an
// exit code by its gRPC code, and the user reads the manager's message
// without gRPC's frame.
func TestExitCode(t *testing.T) {
	wrap := func(c codes.Code, msg string) error {
		return fmt.Errorf("intercept deployment/echo: %w", status.Error(c, msg))
	}
	tests := []struct {
		err  error
		code int
		text string
	}{
		{wrap(codes.AlreadyExists, "bob's intercept echo takes those requests"), exitConflict, "intercept deployment/echo: bob's intercept echo takes those requests"},
		{wrap(codes.FailedPrecondition, "the running daemon speaks 2"), exitConflict, "intercept deployment/echo: the running daemon speaks 2"},
		{wrap(codes.NotFound, "no intercept echo"), exitNotFound, "intercept deployment/echo: no intercept echo"},
		{wrap(codes.PermissionDenied, "echo is alice's"), exitForbidden, "intercept deployment/echo: echo is alice's"},
		{wrap(codes.Unavailable, "not connected to the manager (reconnecting); try again"), exitUnavailable, "intercept deployment/echo: not connected to the manager (reconnecting); try again"},
		{wrap(codes.InvalidArgument, "bad match"), exitUsage, "intercept deployment/echo: bad match"},
		{wrap(codes.Internal, "bug"), exitError, "intercept deployment/echo: bug"},
		{usagef("--port is required"), exitUsage, "--port is required"},
		{session.ErrNotRunning, exitError, session.ErrNotRunning.Error()},
		{errors.New("plain"), exitError, "plain"},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.code {
			t.Errorf("exitCode(%v) = %d, want %d", tt.err, got, tt.code)
		}
		if got := errorText(tt.err); got != tt.text {
			t.Errorf("errorText(%v) = %q, want %q", tt.err, got, tt.text)
		}
	}
}
