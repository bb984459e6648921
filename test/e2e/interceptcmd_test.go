//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestInterceptCommand: intercept -- CMD runs CMD on the laptop with the
// pod's environment while the intercept lasts: a request with the header
// gets CMD's answer, which names the intercept (TELE_INTERCEPT) and carries
// the pod's Secret-sourced variable; SIGINT to kubectl tele reaches CMD,
// which ends as it decides, and the intercept with it; CMD's exit status is
// the command's, with no intercept left; an intercept that cannot be made
// never runs CMD.
func TestInterceptCommand(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "icmd", nil)
	c.deployEcho(t, ns, "echo", 1)
	ctx := ctxFor(t, 10*time.Minute)
	d := connectDevelopers(ctx, t, ns, 36)
	l, u := d[0].l, d[0].u
	echoBin := filepath.Join(kindDir, ".cache", "images", "echo")
	url := "http://echo:8080/"

	t.Run("CMD serves the intercept with the pod's environment; SIGINT ends both", func(t *testing.T) {
		// CMD: a shell that serves on 7091 under a name made of its
		// environment, and on SIGINT says so, stops its server, exits 0.
		script := `trap 'echo CMD-GOT-INT; kill $pid; exit 0' INT; "$0" serve -http 127.0.0.1:7091 -udp "" -name "$TELE_INTERCEPT-$ECHO_TOKEN" & pid=$!; wait $pid`
		start := time.Now()
		cmd, exited, out := l.startTele(t, u, "intercept", "deploy/echo", "--name", "cmd", "--port", "7091:8080", "--http-match", "x-dev=cmd",
			"--", "sh", "-c", script, echoBin)
		eventually(t, 2*time.Minute, "CMD serving on the laptop", func() error {
			select {
			case err := <-exited:
				t.Fatalf("intercept -- CMD ended early: %v", err)
			default:
			}
			got, err := l.curl(ctx, "http://127.0.0.1:7091/")
			if err != nil {
				return fmt.Errorf("%v: %s", err, got)
			}
			if !strings.Contains(got, `"server":"cmd-s3cr3t-echo"`) {
				return fmt.Errorf("answered %q, want server cmd-s3cr3t-echo", got)
			}
			return nil
		})
		t.Logf("intercept -- CMD serving after %s", time.Since(start).Round(time.Millisecond))
		if who := served(t, c, ns, "-H", "x-dev=cmd@0", url, url); len(who) != 2 || who[0] != "cmd-s3cr3t-echo" || !strings.HasPrefix(who[1], "echo-") {
			t.Errorf("answered by %v, want cmd-s3cr3t-echo (CMD, with the pod's ECHO_TOKEN) then echo-*", who)
		}

		pid := teleProcess(t, cmd.Process.Pid)
		if err := syscall.Kill(pid, syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("after SIGINT: %v, want exit 0 (CMD's)", err)
			}
		case <-time.After(time.Minute):
			t.Fatal("kubectl tele did not end a minute after SIGINT")
		}
		b, _ := os.ReadFile(out)
		if !strings.Contains(string(b), "CMD-GOT-INT") || !strings.Contains(string(b), "Intercept cmd ended with the command.") {
			t.Errorf("output does not show CMD getting SIGINT, then the intercept ending:\n%s", b)
		}
		noIntercept(t, ctx, l, u, "x-dev=cmd")
		if got, err := l.curl(ctx, "http://127.0.0.1:7091/"); err == nil {
			t.Errorf("CMD's server still answers after the command ended: %s", got)
		}
		if who := served(t, c, ns, "-H", "x-dev=cmd@0", url); len(who) != 1 || !strings.HasPrefix(who[0], "echo-") {
			t.Errorf("after the command ended: answered by %v, want echo-*", who)
		}
	})

	t.Run("CMD's exit status is the command's, and the intercept is gone", func(t *testing.T) {
		out, err := l.tele(ctx, u, "intercept", "deploy/echo", "--name", "three", "--port", "7092:8080", "--http-match", "x-dev=three",
			"--", "sh", "-c", `test "$TELE_INTERCEPT" = three && test "$ECHO_TOKEN" = s3cr3t-echo && exit 3; exit 9`)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Fatalf("intercept -- sh -c 'exit 3': %v, want exit status 3\n%s", err, out)
		}
		if !strings.Contains(out, "Intercept three ended with the command.") || strings.Contains(out, "error:") {
			t.Errorf("output:\n%s", out)
		}
		noIntercept(t, ctx, l, u, "x-dev=three")
	})

	t.Run("CMD never runs when the intercept cannot be made", func(t *testing.T) {
		marker := filepath.Join(u.home, "cmd-ran")
		out, err := l.tele(ctx, u, "intercept", "deploy/no-such-workload", "--port", "7093:8080", "--", "touch", marker)
		if err == nil {
			t.Errorf("intercept of a missing workload succeeded:\n%s", out)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Errorf("CMD ran though the intercept failed:\n%s", out)
		}
		noIntercept(t, ctx, l, u, "7093")
	})
}

// startTele starts kubectl-tele as u inside laptop l with args (an
// intercept with -- CMD, say) and returns it, a channel that gets its end,
// and the file its output goes to, which the test's log gets at the end.
func (l *laptop) startTele(t *testing.T, u *teleUser, args ...string) (*exec.Cmd, <-chan error, string) {
	t.Helper()
	out, err := os.CreateTemp(t.TempDir(), "tele-out")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", l.name, "runuser", "-u", u.name, "--", "env", "HOME=" + u.home, "XDG_CACHE_HOME=" + filepath.Join(u.home, ".cache"), "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		teleBin, "--kubeconfig", u.kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		b, _ := os.ReadFile(out.Name())
		t.Logf("kubectl tele %s: output:\n%s", strings.Join(args, " "), b)
	})
	return cmd, exited, out.Name()
}

// noIntercept fails if list --intercepts shows what (an intercept's
// match, say).
func noIntercept(t *testing.T, ctx context.Context, l *laptop, u *teleUser, what string) {
	t.Helper()
	out, err := l.tele(ctx, u, "list", "--intercepts")
	if err != nil {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if strings.Contains(out, what) {
		t.Errorf("an intercept with %s is still listed:\n%s", what, out)
	}
}

// teleProcess is the kubectl-tele process that parent (ip netns exec, then
// runuser) started: parent's descendant running teleBin.
func teleProcess(t *testing.T, parent int) int {
	t.Helper()
	ppid := map[int]int{}
	exe := map[int]string{}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces; split after ')'.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 2 {
			continue
		}
		ppid[pid], _ = strconv.Atoi(f[1])
		cmdline, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		exe[pid], _, _ = strings.Cut(string(cmdline), "\x00")
	}
	for pid, name := range exe {
		if name != teleBin {
			continue
		}
		for p := ppid[pid]; p > 1; p = ppid[p] {
			if p == parent {
				return pid
			}
		}
	}
	t.Fatalf("no %s process under pid %d", teleBin, parent)
	return 0
}
