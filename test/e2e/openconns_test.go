//go:build e2e

package e2e

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestInterceptOpenConnections: a client's kept-alive connection to a pod,
// opened before the pod's first intercept, does not pass the agent (the
// redirect takes new connections only). Without a flag it keeps reaching the
// app with no failed request, and intercept says so; with
// --reset-idle-connections the agent resets it while it is idle, and the
// client's next request, on a new connection, reaches the laptop.
func TestInterceptOpenConnections(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "openconns", nil)
	c.deployEcho(t, ns, "kept", 1)
	c.deployEcho(t, ns, "reset", 1)
	ctx := ctxFor(t, 5*time.Minute)

	l, u := newLaptop(t, 11), newTeleUser(t, 11, nil)
	dumpLogs(t, u)
	t.Cleanup(func() { l.tele(context.Background(), u, "quit") })
	if out, err := l.tele(ctx, u, "connect", "-n", ns); err != nil {
		t.Fatalf("connect: %v\n%s", err, out)
	}
	l.localServer(t, u, 7072, "LAPTOP")

	// clientThenIntercept starts a client pod sending requests with x-dev:
	// alice over one connection, interval apart; once the first is answered
	// and the connection has been idle for over a second, it intercepts
	// deploy/app with the flags. It returns the intercept's output, how long
	// it took, and who answered each request.
	clientThenIntercept := func(t *testing.T, app string, interval time.Duration, n int, flags ...string) (string, time.Duration, []string) {
		t.Helper()
		url := "http://" + app + ":8080/"
		args := []string{"get", "-interval", interval.String(), "-H", "x-dev=alice"}
		for range n {
			args = append(args, url)
		}
		pod := c.startPod(t, ns, args...)
		eventually(t, time.Minute, "the first answer to "+pod, func() error {
			if strings.TrimSpace(c.podLog(t, ns, pod, false)) == "" {
				return errors.New("no answer yet")
			}
			return nil
		})
		time.Sleep(1300 * time.Millisecond) // the agent resets connections idle for 1 s
		start := time.Now()
		out, err := l.tele(ctx, u, append([]string{"intercept", "deploy/" + app, "--port", "7072:8080", "--http-match", "x-dev=alice"}, flags...)...)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("intercept %s: %v\n%s", app, err, out)
		}
		if took > interval-2*time.Second {
			t.Logf("intercept took %s, close to the client's next request (%s after its first): the result may not say much", took, interval)
		}
		var who []string
		for _, line := range strings.Split(strings.TrimSpace(c.podLog(t, ns, pod, true)), "\n") {
			who = append(who, strings.Fields(line + " ")[0])
		}
		return out, took, who
	}

	t.Run("without a flag, the open connection stays on the app and is named", func(t *testing.T) {
		out, took, who := clientThenIntercept(t, "kept", 3*time.Second, 4)
		t.Logf("intercept (%s): %s\nanswers: %v", took.Round(time.Millisecond), out, who)
		if len(who) != 4 {
			t.Fatalf("want 4 answers, got %v", who)
		}
		for i, w := range who {
			if !strings.HasPrefix(w, "kept-") {
				t.Errorf("request %d answered by %q, want the app (kept-*): a connection open before the intercept must neither fail nor move", i, w)
			}
		}
		re := regexp.MustCompile(`Warning: opened before the intercept, so not through the agent: \d+ connections? to port 8080\.`)
		if !re.MatchString(out) {
			t.Errorf("intercept output does not match %s:\n%s", re, out)
		}
		if out, err := l.tele(ctx, u, "leave", "kept"); err != nil {
			t.Errorf("leave: %v\n%s", err, out)
		}
	})

	t.Run("--reset-idle-connections moves the idle connection's client to the laptop", func(t *testing.T) {
		out, took, who := clientThenIntercept(t, "reset", 8*time.Second, 3, "--reset-idle-connections")
		t.Logf("intercept (%s): %s\nanswers: %v", took.Round(time.Millisecond), out, who)
		if !regexp.MustCompile(`reset, idle since before the intercept: \d+ connections?; their clients reconnect through it`).MatchString(out) {
			t.Errorf("intercept output does not say it reset a connection:\n%s", out)
		}
		if len(who) != 3 || !strings.HasPrefix(who[0], "reset-") || who[1] != "LAPTOP" || who[2] != "LAPTOP" {
			t.Errorf("answered by %v, want reset-* LAPTOP LAPTOP (the reset costs the client no failed request: it retries on a new connection)", who)
		}
		if out, err := l.tele(ctx, u, "leave", "reset"); err != nil {
			t.Errorf("leave: %v\n%s", err, out)
		}
	})
}
