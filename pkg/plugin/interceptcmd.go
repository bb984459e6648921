package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kubectl-tele/kubectl-tele/pkg/target"
)

// InterceptEnv names the intercept in the environment of intercept's
// -- CMD, so that the command (or a script around it) can tell it runs in
// one, and which.
const InterceptEnv = "TELE_INTERCEPT"

// leaveTimeout bounds the leave that ends the intercept of -- CMD.
const leaveTimeout = 30 * time.Second

// interceptArgs checks intercept's and wiretap's arguments: one TYPE/NAME,
// then, after --, the command to run in the intercept, as kubectl exec
// splits its own.
func interceptArgs(cmd *cobra.Command, args []string) error {
	workload, command := splitAtDash(args, cmd.ArgsLenAtDash())
	switch {
	case len(workload) == 0:
		return usagef("%s needs TYPE/NAME, e.g. deploy/my-service", cmd.Name())
	case len(workload) > 1:
		return usagef("%s takes one TYPE/NAME, got %d (%s); to run a command in the %s, put it after --", cmd.Name(), len(workload), strings.Join(workload, " "), cmd.Name())
	case cmd.ArgsLenAtDash() >= 0 && len(command) == 0:
		return usagef("nothing after --: give the command to run in the %s, e.g. -- npm start", cmd.Name())
	}
	return nil
}

// splitAtDash splits args where cobra saw "--" (ArgsLenAtDash, -1 for
// none): the command's own arguments, and the command line to run.
func splitAtDash(args []string, atDash int) (own, command []string) {
	if atDash < 0 || atDash > len(args) {
		return args, nil
	}
	return args[:atDash], args[atDash:]
}

// RootEnv is, in the environment of intercept's -- CMD with --mount, the
// folder the container's volumes are under: the command reads
// $TELE_ROOT/etc/app/config.yaml where the app reads /etc/app/config.yaml.
const RootEnv = "TELE_ROOT"

// commandEnv is the environment of -- CMD: this machine's, with the
// container's variables over it (as --env-file resolves them),
// TELE_INTERCEPT naming the intercept, and TELE_ROOT the --mount folder
// (set only with --mount: otherwise a TELE_ROOT of the user's own passes).
func commandEnv(local []string, pod []target.EnvVar, intercept, root string) []string {
	override := make(map[string]bool, len(pod)+2)
	for _, e := range pod {
		override[e.Name] = true
	}
	override[InterceptEnv] = true
	if root != "" {
		override[RootEnv] = true
	}
	env := make([]string, 0, len(local)+len(pod)+1)
	for _, kv := range local {
		name, _, _ := strings.Cut(kv, "=")
		if !override[name] {
			env = append(env, kv)
		}
	}
	for _, e := range pod {
		env = append(env, e.Name+"="+e.Value)
	}
	env = append(env, InterceptEnv+"="+intercept)
	if root != "" {
		env = append(env, RootEnv+"="+root)
	}
	return env
}

// commandExit is the exit status of intercept's -- CMD, which becomes
// kubectl tele's own (Execute prints nothing more for it).
type commandExit struct{ code int }

func (e commandExit) Error() string { return fmt.Sprintf("the command exited with status %d", e.code) }

// process is a started command, as superviseCommand needs it; tests fake it.
type process interface {
	// Signal delivers s to the command.
	Signal(s os.Signal) error
	// Wait waits for the command to end and returns its exit status:
	// 128+N for a command that signal N ended, as shells report it.
	Wait() (int, error)
}

// superviseCommand waits for p to end, passing it each signal from sigs
// that forward accepts (the command decides what a Ctrl-C means: it may
// finish what it does, or ignore it), and returns its exit status.
func superviseCommand(p process, sigs <-chan os.Signal, forward func(os.Signal) bool) (int, error) {
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, err := p.Wait()
		done <- result{code, err}
	}()
	for {
		select {
		case r := <-done:
			return r.code, r.err
		case s := <-sigs:
			if forward(s) {
				// A command that has just ended is not an error: Wait
				// reports it next.
				_ = p.Signal(s)
			}
		}
	}
}

// runInIntercept runs the command that start starts while the intercept
// lasts, then ends the intercept with leave, with a context of its own:
// the command's context is cancelled by the Ctrl-C that ended the command.
// The command's exit status is the result (commandExit when not 0); an
// intercept that leave could not end is an error too, since it is left
// behind.
func runInIntercept(ctx context.Context, errOut io.Writer, verb, name string, start func() (process, error), sigs <-chan os.Signal, forward func(os.Signal) bool, leave func(context.Context) error) error {
	code, runErr := -1, error(nil)
	if p, err := start(); err != nil {
		runErr = err
	} else {
		code, runErr = superviseCommand(p, sigs, forward)
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), leaveTimeout)
	defer cancel()
	leaveErr := leave(lctx)
	if leaveErr != nil {
		leaveErr = fmt.Errorf("end %s %s after the command: %w; end it with kubectl tele leave %s", verb, name, leaveErr, name)
	} else {
		fmt.Fprintf(errOut, "%s %s ended with the command.\n", capitalize(verb), name)
	}
	switch {
	case runErr != nil:
		return errors.Join(runErr, leaveErr)
	case leaveErr != nil && code == 0:
		return leaveErr
	case leaveErr != nil:
		fmt.Fprintln(errOut, "error:", errorText(leaveErr))
	}
	if code != 0 {
		return commandExit{code}
	}
	return nil
}

// execProcess is a process of os/exec.
type execProcess struct{ cmd *exec.Cmd }

func (p execProcess) Signal(s os.Signal) error { return signalCommand(p.cmd, s) }

func (p execProcess) Wait() (int, error) {
	err := p.cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return -1, err
	}
	ps := p.cmd.ProcessState
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ps.ExitCode(), nil
}

// runCommand runs o's -- CMD in the intercept name with env, on the
// command's standard streams, and ends the intercept after it.
func (o *InterceptOptions) runCommand(ctx context.Context, name string, env []string) error {
	// Listen before the command starts, so no signal slips by between.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, commandSignals...)
	defer signal.Stop(sigs)
	var forward func(os.Signal) bool
	start := func() (process, error) {
		c := exec.Command(o.commandPath, o.command[1:]...)
		c.Args[0] = o.command[0]
		c.Env = env
		c.Stdin, c.Stdout, c.Stderr = o.Streams.In, o.Streams.Out, o.Streams.ErrOut
		forward = commandGroup(c)
		if err := c.Start(); err != nil {
			return nil, fmt.Errorf("run %s: %w", o.command[0], err)
		}
		return execProcess{c}, nil
	}
	leave := func(ctx context.Context) error { return o.ctl.Leave(ctx, name) }
	return runInIntercept(ctx, o.Streams.ErrOut, o.verb(), name, start, sigs, func(s os.Signal) bool { return forward(s) }, leave)
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
