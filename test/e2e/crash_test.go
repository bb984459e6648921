//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestLaptopCrash: the daemon of an intercept is killed (kill -9) under
// steady in-cluster load. Matching requests reach the app again within 3 s,
// no other request fails, the laptop resolves its usual names again within
// 3 s with no command run, and status then says what the dead session left
// and repairs it, so resolv.conf ends as it began and the intercept's
// --mount folder is emptied.
func TestLaptopCrash(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "crash", nil)
	c.deployEcho(t, ns, "echo", 1)
	ctx := ctxFor(t, 10*time.Minute)
	l := newLaptop(t, 50)
	u := newTeleUser(t, 50, nil)
	dumpLogs(t, u)
	// The laptop's own nameserver (laptop.sh's resolv.conf says 127.0.0.1):
	// it answers usual.test, as a laptop's resolver answers its usual names.
	l.startUpstream(t)
	// A real laptop has a default route: once the daemon's TUN and routes
	// are gone, packets to our nameserver take it and are dropped without
	// a word (here by the host's guard, which forwards nothing of a
	// laptop's), rather than refused at once for want of a route.
	if out, err := l.run(ctx, "ip", "route", "add", "default", "via", fmt.Sprintf("10.202.%d.1", l.n)); err != nil {
		t.Fatalf("default route: %v %s", err, out)
	}
	resolv := l.resolvConf(t)
	const usual = "usual.test"
	resolves := func() error {
		out, err := l.as(ctx, u, "getent", "hosts", usual)
		if err != nil || !strings.Contains(out, upstreamAddr) {
			return fmt.Errorf("getent hosts %s: %v %q", usual, err, out)
		}
		return nil
	}
	if err := resolves(); err != nil {
		t.Fatalf("before connect: %v", err)
	}
	t.Cleanup(func() { l.tele(context.Background(), u, "quit") })
	if out, err := l.tele(ctx, u, "connect", "-n", ns); err != nil {
		t.Fatalf("connect: %v\n%s", err, out)
	}
	if err := resolves(); err != nil {
		t.Fatalf("connected: %v", err)
	}
	if got := l.resolvConf(t); !strings.Contains(got, "nameserver 127.0.0.1\n") {
		t.Errorf("the laptop's own nameserver is not in the resolv.conf of the session:\n%s", got)
	}
	l.localServer(t, u, 7070, "LAPTOP-C")
	// With the pod's volumes (its ServiceAccount token among them) under
	// mnt: the dead daemon cannot clear them; status must.
	mnt := filepath.Join(u.home, "crash-mnt")
	if out, err := l.tele(ctx, u, "intercept", "deploy/echo", "--port", "7070:8080", "--http-match", "x-dev=crash", "--mount", mnt); err != nil {
		t.Fatalf("intercept: %v\n%s", err, out)
	}
	const token = "var/run/secrets/kubernetes.io/serviceaccount/token"
	if _, err := os.Stat(filepath.Join(mnt, token)); err != nil {
		t.Errorf("--mount: %v", err)
	}

	// Steady, bounded load: one matching and one other request every
	// 100 ms for about 20 s, each client on its own kept-alive connection;
	// every answer is a line of its pod's log, timed by the kubelet.
	const n = 200
	urls := make([]string, n)
	for i := range urls {
		urls[i] = "http://echo:8080/"
	}
	matching := c.startPod(t, ns, append([]string{"get", "-interval", "100ms", "-H", "x-dev=crash"}, urls...)...)
	other := c.startPod(t, ns, append([]string{"get", "-interval", "100ms", "-H", "x-dev=other"}, urls...)...)
	eventually(t, 60*time.Second, "both clients under way, the laptop answering", func() error {
		m, o := c.timedLog(t, ns, matching), c.timedLog(t, ns, other)
		if len(m) < 10 || len(o) < 10 {
			return fmt.Errorf("%d and %d answers so far", len(m), len(o))
		}
		if m[len(m)-1].who != "LAPTOP-C" {
			return fmt.Errorf("matching request answered by %q", m[len(m)-1].who)
		}
		return nil
	})

	st := l.status(t, ctx, u)
	if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the daemon %d: %v", st.PID, err)
	}
	killed := time.Now()

	// No tele command from here until status below.
	var dnsBack time.Duration
	for {
		if err := resolves(); err == nil {
			dnsBack = time.Since(killed)
			break
		} else if time.Since(killed) > 20*time.Second {
			t.Fatalf("the laptop does not resolve its usual names 20 s after the daemon died: %v", err)
		}
		// Sleep: the measurement's resolution: the system resolver recovering
		// after the daemon died gives no event, and no tele command may run
		// here.
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the laptop resolves %s again %s after the kill, with no command run", usual, dnsBack.Round(time.Millisecond))
	if dnsBack > 3*time.Second {
		t.Errorf("the laptop resolved its usual names only %s after the daemon died, want within 3s", dnsBack.Round(time.Millisecond))
	}

	c.podLog(t, ns, matching, true)
	c.podLog(t, ns, other, true)
	m, o := c.timedLog(t, ns, matching), c.timedLog(t, ns, other)
	var before, failed, laptopAfter int
	var firstApp time.Time
	for _, a := range m {
		switch {
		case a.at.Before(killed):
			before++
		case strings.HasPrefix(a.who, "echo-"):
			if firstApp.IsZero() {
				firstApp = a.at
			}
		case a.who == "LAPTOP-C":
			laptopAfter++ // answered in the instant of the kill
		default:
			failed++
			if failed <= 3 {
				t.Logf("a matching request failed %s after the kill: %s", a.at.Sub(killed).Round(time.Millisecond), a.line)
			}
		}
	}
	var otherFailed int
	for _, a := range o {
		if !strings.HasPrefix(a.who, "echo-") {
			otherFailed++
			t.Logf("another request failed %s after the kill: %s", a.at.Sub(killed).Round(time.Millisecond), a.line)
		}
	}
	if firstApp.IsZero() {
		t.Fatalf("no matching request reached the app after the kill (%d answers, %d failed)", len(m), failed)
	}
	back := firstApp.Sub(killed)
	t.Logf("matching requests: %d answered before the kill, %d by the laptop after it, first answered by the app %s after the kill, %d failed; other requests: %d, %d failed",
		before, laptopAfter, back.Round(time.Millisecond), failed, len(o), otherFailed)
	if back > 3*time.Second {
		t.Errorf("matching requests reached the app %s after the kill, want within 3s", back.Round(time.Millisecond))
	}
	if otherFailed != 0 {
		t.Errorf("%d other requests failed", otherFailed)
	}
	if len(m) != n || len(o) != n {
		t.Errorf("answers: %d matching, %d other, want %d each", len(m), len(o), n)
	}

	// status finds what the dead session left, says so, and repairs it.
	out, err := l.tele(ctx, u, "status")
	if err != nil {
		t.Fatalf("status after the crash: %v\n%s", err, out)
	}
	t.Logf("status after the crash: %s", strings.SplitN(out, "\n", 2)[0])
	if !strings.Contains(out, "repaired") || !strings.Contains(out, "DNS settings") {
		t.Errorf("status does not say it repaired the DNS settings:\n%s", out)
	}
	if got := l.resolvConf(t); got != resolv {
		t.Errorf("resolv.conf after status:\n%s\nwant\n%s", got, resolv)
	}
	if l.hasDevice(ctx, "tele0") {
		t.Error("tele0 left after status")
	}
	if !strings.Contains(out, "the --mount folder "+mnt) {
		t.Errorf("status does not say it emptied the --mount folder %s:\n%s", mnt, out)
	}
	if _, err := os.Stat(filepath.Join(mnt, token)); !os.IsNotExist(err) {
		t.Errorf("the pod's token under %s after status: %v, want it gone", mnt, err)
	}
	if out, err := l.tele(ctx, u, "status"); err != nil || strings.Contains(out, "repaired") {
		t.Errorf("status again: %v\n%s", err, out)
	}
}

// timedAnswer is one line of an `echo get` client's log: when the kubelet
// read it (the answer's time: the client prints each as it comes) and who
// answered ("status 502: ..." or "error: ..." when none did).
type timedAnswer struct {
	at   time.Time
	who  string
	line string
}

// timedLog returns the answers a client pod has logged so far.
func (c *cluster) timedLog(t *testing.T, ns, pod string) []timedAnswer {
	t.Helper()
	b, err := c.client.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Timestamps: true}).DoRaw(ctxFor(t, 30*time.Second))
	if err != nil {
		return nil // not started yet
	}
	var out []timedAnswer
	for line := range strings.Lines(string(b)) {
		ts, rest, ok := strings.Cut(strings.TrimSpace(line), " ")
		at, err := time.Parse(time.RFC3339Nano, ts)
		if !ok || err != nil {
			continue
		}
		who := rest
		if f := strings.Fields(rest); len(f) > 0 && f[0] != "status" && f[0] != "error:" {
			who = f[0]
		}
		out = append(out, timedAnswer{at: at, who: who, line: rest})
	}
	return out
}
