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

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestSecurity: nobody but laptops (through port-forward) and agents (with
// the namespace's token) reaches the manager; the daemon's socket is its
// user's alone; the root helper refuses what it was not made for.
func TestSecurity(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "security", nil)
	c.deployEcho(t, ns, "echo", 1)
	ctx := ctxFor(t, 5*time.Minute)
	l := newLaptop(t, 10)
	u := newTeleUser(t, 10, nil)
	dumpLogs(t, u)
	t.Cleanup(func() { l.tele(context.Background(), u, "quit") })
	if out, err := l.tele(ctx, u, "connect", "-n", ns); err != nil {
		t.Fatalf("connect: %v\n%s", err, out)
	}
	l.localServer(t, u, 7070, "LAPTOP-S")
	if out, err := l.tele(ctx, u, "intercept", "deploy/echo", "--port", "7070:8080", "--http-match", "x-dev=s"); err != nil {
		t.Fatalf("intercept: %v\n%s", err, out)
	}

	t.Run("a pod that is not an agent gets nothing from the manager", func(t *testing.T) {
		pods, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + managerJob})
		if err != nil || len(pods.Items) != 1 {
			t.Fatalf("manager pod: %v", err)
		}
		svc, err := c.client.CoreV1().Services(ns).Get(ctx, "kubectl-tele-manager", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out := c.runProbe(t, ns, pods.Items[0].Status.PodIP, svc.Spec.ClusterIP+":8082")
		t.Logf("probe:\n%s", out)
		// The agents' port is TLS; past it (the probe does not verify the
		// manager), the token check refuses all four agent calls.
		if strings.Contains(out, "ALLOWED") || strings.Count(out, "denied:") != 5 || strings.Count(out, "Unauthenticated") != 4 {
			t.Errorf("the intruder got in:\n%s", out)
		}
	})

	t.Run("the daemon's control socket is its user's alone", func(t *testing.T) {
		dir := fmt.Sprintf("/tmp/kubectl-tele-%d", u.uid)
		for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "daemon.sock"): 0o600} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if fi.Mode().Perm() != want || int(st.Uid) != u.uid {
				t.Errorf("%s: mode %v uid %d, want %v uid %d", path, fi.Mode().Perm(), st.Uid, want, u.uid)
			}
		}
		// Another user cannot talk to it.
		other := newTeleUser(t, 11, nil)
		out, err := l.as(ctx, other, "curl", "-sS", "--max-time", "3", "--unix-socket", filepath.Join(dir, "daemon.sock"), "http://daemon/status")
		if err == nil || strings.Contains(out, "connected") {
			t.Errorf("another user reached the daemon: %v %s", err, out)
		}
	})

	t.Run("the root helper refuses what it was not made for", func(t *testing.T) {
		before := l.resolvConf(t)
		for _, req := range []string{
			`{"device":{"version":1,"name":"eth0","mtu":1420,"addr":"198.18.0.1/32","routes":["10.96.0.0/16"],"socketPath":"/tmp/x.sock"},"dns":{"nameserver":"10.96.0.10"}}`,
			`{"device":{"version":1,"name":"tele0","mtu":1420,"addr":"198.18.0.1/32","routes":["0.0.0.0/0"],"socketPath":"/tmp/x.sock"},"dns":{"nameserver":"10.96.0.10"}}`,
			`{"device":{"version":1,"name":"tele0","mtu":1420,"addr":"198.18.0.1/32","routes":["10.96.0.0/16"],"socketPath":"/etc/passwd"},"dns":{"nameserver":"10.96.0.10"}}`,
			`{"device":{"version":1,"name":"tele0","mtu":1420,"addr":"198.18.0.1/32","routes":["10.96.0.0/16"],"socketPath":"/tmp/kubectl-tele-0/x.sock"},"dns":{"nameserver":"8.8.8.8"}}`,
			`{"device":{"version":1,"name":"tele0","mtu":1420,"addr":"198.18.0.1/32","routes":["10.96.0.0/16"],"socketPath":"/tmp/x.sock"},"dns":{"nameserver":"10.96.0.10","search":["a\nnameserver 1.2.3.4"]}}`,
		} {
			out, err := l.as(ctx, u, "sh", "-c", "printf '%s' '"+req+"' | sudo -n "+teleBin+" helper up")
			if err == nil {
				t.Errorf("helper accepted %s\n%s", req, out)
			}
		}
		if l.resolvConf(t) != before {
			t.Error("a refused request changed resolv.conf")
		}
	})
}
