package plugin

import (
	"bytes"
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-tele/kubectl-tele/pkg/target"
)

// TestInterceptCommandArgs: intercept and wiretap split their arguments at
// -- as kubectl exec does: one TYPE/NAME before, the command after, flags
// of theirs anywhere before the --.
func TestInterceptCommandArgs(t *testing.T) {
	tests := []struct {
		args     []string
		workload []string
		command  []string
		err      string // a substring of the usage error; "" for none
	}{
		{args: []string{"deploy/web", "--port", "8080"}, workload: []string{"deploy/web"}},
		{args: []string{"deploy/web", "--port", "8080", "--", "go", "run", "."}, workload: []string{"deploy/web"}, command: []string{"go", "run", "."}},
		{args: []string{"--port", "8080", "deploy/web", "--", "sh", "-c", "exec server --port=8080"}, workload: []string{"deploy/web"}, command: []string{"sh", "-c", "exec server --port=8080"}},
		// After --, the command's flags are its own, even intercept's names.
		{args: []string{"deploy/web", "--", "server", "--port", "9090", "--name", "x", "--"}, workload: []string{"deploy/web"}, command: []string{"server", "--port", "9090", "--name", "x", "--"}},
		{args: []string{"deploy/web", "--"}, err: "nothing after --"},
		{args: []string{"--", "server"}, err: "needs TYPE/NAME"},
		{args: []string{}, err: "needs TYPE/NAME"},
		{args: []string{"deploy/web", "server"}, err: "put it after --"},
	}
	for _, newCmd := range []func(*genericclioptions.ConfigFlags, genericiooptions.IOStreams) *cobra.Command{NewCmdIntercept, NewCmdWiretap} {
		for _, tt := range tests {
			cmd := newCmd(genericclioptions.NewConfigFlags(false), genericiooptions.NewTestIOStreamsDiscard())
			var workload, command []string
			cmd.RunE = func(cmd *cobra.Command, args []string) error {
				workload, command = splitAtDash(args, cmd.ArgsLenAtDash())
				return nil
			}
			cmd.SetArgs(tt.args)
			cmd.SetOut(new(bytes.Buffer))
			cmd.SetErr(new(bytes.Buffer))
			err := cmd.Execute()
			name := cmd.Name() + " " + strings.Join(tt.args, " ")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || exitCode(err) != exitUsage {
					t.Errorf("%s: error %v (exit %d), want a usage error with %q", name, err, exitCode(err), tt.err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if !slices.Equal(workload, tt.workload) || !slices.Equal(command, tt.command) {
				t.Errorf("%s: workload %q command %q, want %q and %q", name, workload, command, tt.workload, tt.command)
			}
		}
	}
}

// TestInterceptCommandNotFound: a command that is not there is refused
// before anything is made in the cluster.
func TestInterceptCommandNotFound(t *testing.T) {
	o := &InterceptOptions{Port: "8080", EnvSyntax: string(target.EnvSyntaxDotenv), command: []string{"no-such-command-tele"}}
	err := o.Validate()
	if err == nil || exitCode(err) != exitUsage || !strings.Contains(err.Error(), "no-such-command-tele") {
		t.Errorf("Validate: %v (exit %d), want a usage error naming the command", err, exitCode(err))
	}
}

func TestCommandEnv(t *testing.T) {
	local := []string{"PATH=/usr/bin", "HOME=/home/me", "GREETING=local", "TELE_INTERCEPT=stale", "EMPTY="}
	pod := []target.EnvVar{{Name: "GREETING", Value: "from the pod"}, {Name: "DB_URL", Value: "postgres://db:5432"}, {Name: "MULTI", Value: "a\nb"}}
	for _, tc := range []struct {
		name, root string
		local      []string
		want       []string
	}{
		{"no mount", "", local,
			[]string{"PATH=/usr/bin", "HOME=/home/me", "EMPTY=", "GREETING=from the pod", "DB_URL=postgres://db:5432", "MULTI=a\nb", "TELE_INTERCEPT=web"}},
		{"no mount: the user's TELE_ROOT passes", "", append(slices.Clone(local), "TELE_ROOT=/mine"),
			[]string{"PATH=/usr/bin", "HOME=/home/me", "EMPTY=", "TELE_ROOT=/mine", "GREETING=from the pod", "DB_URL=postgres://db:5432", "MULTI=a\nb", "TELE_INTERCEPT=web"}},
		{"mount", "/tmp/web", append(slices.Clone(local), "TELE_ROOT=/mine"),
			[]string{"PATH=/usr/bin", "HOME=/home/me", "EMPTY=", "GREETING=from the pod", "DB_URL=postgres://db:5432", "MULTI=a\nb", "TELE_INTERCEPT=web", "TELE_ROOT=/tmp/web"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := commandEnv(tc.local, pod, "web", tc.root)
			if !slices.Equal(got, tc.want) {
				t.Errorf("commandEnv:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// fakeProcess is a command that records the signals it gets and exits
// when the test says.
type fakeProcess struct {
	signals chan os.Signal
	exit    chan int
}

func newFakeProcess() *fakeProcess {
	return &fakeProcess{signals: make(chan os.Signal, 8), exit: make(chan int)}
}

func (p *fakeProcess) Signal(s os.Signal) error { p.signals <- s; return nil }
func (p *fakeProcess) Wait() (int, error)       { return <-p.exit, nil }

// fakeLeave records leave's calls and whether its context was alive.
type fakeLeave struct {
	calls  chan error // each call's ctx.Err()
	result error
}

func (l *fakeLeave) leave(ctx context.Context) error {
	l.calls <- ctx.Err()
	return l.result
}

// TestRunInIntercept: the command's exit status is the result, a signal
// reaches the command first and it decides when to end, and the
// intercept is left after it ends, with a live context even when the
// command line's was cancelled by the Ctrl-C.
func TestRunInIntercept(t *testing.T) {
	all := func(os.Signal) bool { return true }

	t.Run("exit status", func(t *testing.T) {
		for _, code := range []int{0, 3, 130} {
			p := newFakeProcess()
			l := &fakeLeave{calls: make(chan error, 1)}
			done := make(chan error, 1)
			go func() {
				done <- runInIntercept(context.Background(), new(bytes.Buffer), "intercept", "web", func() (process, error) { return p, nil }, nil, all, l.leave)
			}()
			p.exit <- code
			err := <-done
			if got := exitCode(err); (code == 0 && err != nil) || (code != 0 && got != code) {
				t.Errorf("command exits %d: runInIntercept = %v (exit %d)", code, err, got)
			}
			if len(l.calls) != 1 {
				t.Errorf("command exits %d: leave called %d times, want 1", code, len(l.calls))
			}
		}
	})

	t.Run("signals reach the command, which decides", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		p := newFakeProcess()
		l := &fakeLeave{calls: make(chan error, 1)}
		sigs := make(chan os.Signal)
		done := make(chan error, 1)
		var errOut bytes.Buffer
		go func() {
			done <- runInIntercept(ctx, &errOut, "intercept", "web", func() (process, error) { return p, nil }, sigs, all, l.leave)
		}()
		// The Ctrl-C cancels the command line's context, as main's
		// signal.NotifyContext does, and reaches the command.
		cancel()
		sigs <- syscall.SIGINT
		if s := <-p.signals; s != syscall.SIGINT {
			t.Fatalf("command got %v, want SIGINT", s)
		}
		// The command ignores it: a second signal reaches it too, so the
		// intercept is still there (leave runs only after Wait).
		sigs <- syscall.SIGTERM
		if s := <-p.signals; s != syscall.SIGTERM {
			t.Fatalf("command got %v, want SIGTERM", s)
		}
		select {
		case <-l.calls:
			t.Fatal("left while the command runs")
		default:
		}
		p.exit <- 130
		if err := <-done; exitCode(err) != 130 {
			t.Errorf("runInIntercept = %v, want the command's 130", err)
		}
		if ctxErr := <-l.calls; ctxErr != nil {
			t.Errorf("leave ran with a dead context (%v): the intercept would be left behind", ctxErr)
		}
		if !strings.Contains(errOut.String(), "Intercept web ended with the command.") {
			t.Errorf("stderr %q does not say the intercept ended", errOut.String())
		}
	})

	t.Run("signals the terminal delivered are not passed twice", func(t *testing.T) {
		p := newFakeProcess()
		l := &fakeLeave{calls: make(chan error, 1)}
		sigs := make(chan os.Signal)
		done := make(chan error, 1)
		onlyTerm := func(s os.Signal) bool { return s == syscall.SIGTERM }
		go func() {
			done <- runInIntercept(context.Background(), new(bytes.Buffer), "intercept", "web", func() (process, error) { return p, nil }, sigs, onlyTerm, l.leave)
		}()
		sigs <- syscall.SIGINT // the terminal's: the command has it already
		sigs <- syscall.SIGTERM
		if s := <-p.signals; s != syscall.SIGTERM {
			t.Errorf("command got %v first, want only SIGTERM", s)
		}
		p.exit <- 143
		if err := <-done; exitCode(err) != 143 {
			t.Errorf("runInIntercept = %v, want 143", err)
		}
	})

	t.Run("a command that does not start still leaves", func(t *testing.T) {
		l := &fakeLeave{calls: make(chan error, 1)}
		startErr := errors.New("run server: permission denied")
		err := runInIntercept(context.Background(), new(bytes.Buffer), "intercept", "web", func() (process, error) { return nil, startErr }, nil, all, l.leave)
		if !errors.Is(err, startErr) || exitCode(err) != exitError {
			t.Errorf("runInIntercept = %v (exit %d), want %v, exit 1", err, exitCode(err), startErr)
		}
		if len(l.calls) != 1 {
			t.Errorf("leave called %d times, want 1", len(l.calls))
		}
	})

	t.Run("a failed leave is reported", func(t *testing.T) {
		for _, code := range []int{0, 3} {
			p := newFakeProcess()
			l := &fakeLeave{calls: make(chan error, 1), result: errors.New("daemon gone")}
			var errOut bytes.Buffer
			done := make(chan error, 1)
			go func() {
				done <- runInIntercept(context.Background(), &errOut, "intercept", "web", func() (process, error) { return p, nil }, nil, all, l.leave)
			}()
			p.exit <- code
			err := <-done
			switch {
			case code == 0 && (err == nil || !strings.Contains(err.Error(), "kubectl tele leave web")):
				t.Errorf("command exits 0, leave fails: %v, want an error saying how to leave", err)
			case code != 0 && (exitCode(err) != code || !strings.Contains(errOut.String(), "daemon gone")):
				t.Errorf("command exits %d, leave fails: %v (exit %d), stderr %q: want exit %d and the leave's error on stderr", code, err, exitCode(err), errOut.String(), code)
			}
		}
	})
}

// TestExecuteCommandExit: the command's status is kubectl tele's, with no
// "error:" line of its own.
func TestExecuteCommandExit(t *testing.T) {
	if got := exitCode(commandExit{42}); got != 42 {
		t.Errorf("exitCode(commandExit{42}) = %d", got)
	}
	if got := exitCode(errors.Join(commandExit{7})); got != 7 {
		t.Errorf("exitCode of a wrapped commandExit = %d, want 7", got)
	}
}
