//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// TestVersionSkew: a laptop meets a manager of another version in the
// namespace. Same protocol: it uses it and says so. Another protocol and in
// use: it refuses at once, saying what to do, and leaves it running. Another
// protocol and idle: it replaces it. Never a hang or a raw gRPC error.
func TestVersionSkew(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "skew", nil)
	ctx := ctxFor(t, 10*time.Minute)
	c.deployEcho(t, ns, "echo", 1)
	la, lb := newLaptop(t, 32), newLaptop(t, 33)
	ua, ub := newTeleUser(t, 32, nil), newTeleUser(t, 33, nil)
	dumpLogs(t, ua)
	dumpLogs(t, ub)
	t.Cleanup(func() {
		la.tele(context.Background(), ua, "quit")
		lb.tele(context.Background(), ub, "quit")
	})
	if out, err := la.tele(ctx, ua, "connect", "-n", ns); err != nil {
		t.Fatalf("connect A: %v\n%s", err, out)
	}
	jobs := c.client.BatchV1().Jobs(ns)
	// pretend rewrites the running manager's Job as one of another build.
	pretend := func(t *testing.T, annotations map[string]string) types.UID {
		t.Helper()
		j, err := jobs.Get(ctx, managerJob, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range annotations {
			j.Annotations[k] = v
		}
		if _, err := jobs.Update(ctx, j, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		return j.UID
	}
	connectB := func(t *testing.T) (string, error, time.Duration) {
		start := time.Now()
		out, err := lb.tele(ctx, ub, "connect", "-n", ns)
		t.Logf("connect B (%s):\n%s", time.Since(start).Round(time.Millisecond), out)
		return out, err, time.Since(start)
	}

	t.Run("another version, same protocol: used", func(t *testing.T) {
		uid := pretend(t, map[string]string{teleproto.AnnotationVersion: "v0.0.0-old"})
		out, err, _ := connectB(t)
		if err != nil {
			t.Fatalf("connect B: %v", err)
		}
		if !strings.Contains(out, "using manager v0.0.0-old of another version") {
			t.Errorf("connect does not say it uses a manager of another version")
		}
		if j, _ := jobs.Get(ctx, managerJob, metav1.GetOptions{}); j == nil || j.UID != uid {
			t.Errorf("the manager was replaced")
		}
		if out, err := lb.tele(ctx, ub, "quit"); err != nil {
			t.Fatalf("quit B: %v\n%s", err, out)
		}
	})

	t.Run("another protocol, in use: refused", func(t *testing.T) {
		uid := pretend(t, map[string]string{teleproto.AnnotationProtocol: "3"})
		out, err, took := connectB(t)
		if err == nil {
			t.Fatal("connect B succeeded against a manager of another protocol")
		}
		for _, want := range []string{"v0.0.0-old", "protocol 3", "1 session", "kubectl tele uninstall -n " + ns} {
			if !strings.Contains(out, want) {
				t.Errorf("refusal does not say %q", want)
			}
		}
		if took > time.Minute {
			t.Errorf("refusal took %s", took)
		}
		if j, _ := jobs.Get(ctx, managerJob, metav1.GetOptions{}); j == nil || j.UID != uid {
			t.Errorf("the manager in use was replaced")
		}
		if st := lb.status(t, ctx, ub); st.Phase != "disconnected" {
			t.Errorf("B after the refusal: %+v", st)
		}
		if st := la.status(t, ctx, ua); st.Phase != "connected" {
			t.Errorf("A after B's refusal: %+v", st)
		}
	})

	t.Run("another protocol, idle: replaced", func(t *testing.T) {
		old, err := jobs.Get(ctx, managerJob, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if out, err := la.tele(ctx, ua, "quit"); err != nil {
			t.Fatalf("quit A: %v\n%s", err, out)
		}
		out, err, _ := connectB(t)
		if err != nil {
			t.Fatalf("connect B: %v", err)
		}
		if !strings.Contains(out, "replacing the manager") {
			t.Errorf("connect does not say it replaces the manager")
		}
		j, err := jobs.Get(ctx, managerJob, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if j.UID == old.UID {
			t.Fatal("the manager Job was not replaced")
		}
		if got := j.Annotations[teleproto.AnnotationProtocol]; got != teleproto.FormatProtocol(teleproto.CurrentProtocolVersion) {
			t.Errorf("new manager's protocol annotation %q", got)
		}
		if out, err := lb.curl(ctx, "http://echo:8080/"); err != nil {
			t.Errorf("B cannot reach the cluster through the new manager: %v\n%s", err, out)
		}
	})
}
