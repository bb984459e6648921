//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestFaults: what happens in real use does not lose traffic or leave
// anything behind: the manager pod deleted, the agent killed, a rollout, the
// local server stopped, the daemon killed.
func TestFaults(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "faults", nil)
	c.deployEcho(t, ns, "echo", 1)
	ctx := ctxFor(t, 15*time.Minute)
	l := newLaptop(t, 8)
	u := newTeleUser(t, 8, nil)
	dumpLogs(t, u)
	resolv := l.resolvConf(t)
	t.Cleanup(func() { l.tele(context.Background(), u, "quit") })
	if out, err := l.tele(ctx, u, "connect", "-n", ns); err != nil {
		t.Fatalf("connect: %v\n%s", err, out)
	}
	l.localServer(t, u, 7070, "LAPTOP")
	if out, err := l.tele(ctx, u, "intercept", "deploy/echo", "--port", "7070:8080", "--http-match", "x-dev=alice"); err != nil {
		t.Fatalf("intercept: %v\n%s", err, out)
	}
	url := "http://echo:8080/"
	// routed reports who answers a request with the header, and one without.
	routed := func() (string, string) {
		who := served(t, c, ns, "-H", "x-dev=alice@0", url, url)
		if len(who) != 2 {
			return strings.Join(who, " "), ""
		}
		return who[0], who[1]
	}
	if a, b := routed(); a != "LAPTOP" || !strings.HasPrefix(b, "echo-") {
		t.Fatalf("intercept not working to begin with: %s, %s", a, b)
	}

	t.Run("manager pod deleted: the daemon reconnects and restores the intercept", func(t *testing.T) {
		pods, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + managerJob})
		if err != nil || len(pods.Items) != 1 {
			t.Fatalf("manager pods: %v %v", len(pods.Items), err)
		}
		old := pods.Items[0].Name
		// As kubectl delete pod or an eviction does: SIGTERM, then the grace period.
		if err := c.client.CoreV1().Pods(ns).Delete(ctx, old, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		eventually(t, 45*time.Second, "names resolve and the intercept works again", func() error {
			if out, err := l.curl(ctx, "http://echo."+ns+":8080/"); err != nil || !strings.Contains(out, "echo-") {
				return fmt.Errorf("curl: %v %s", err, out)
			}
			if a, _ := routed(); a != "LAPTOP" {
				return fmt.Errorf("header request answered by %s", a)
			}
			return nil
		})
		t.Logf("reconnected and restored %s after the manager pod was deleted", time.Since(start).Round(time.Second))
		if st := l.status(t, ctx, u); st.ManagerPod == old || st.Phase != "connected" {
			t.Errorf("status after reconnect: %+v", st)
		}
	})

	t.Run("port-forward cut: flows in progress fail, new ones work", func(t *testing.T) {
		// A slow download in progress through the tunnel.
		type result struct {
			out string
			err error
		}
		dl := make(chan result, 1)
		go func() {
			out, err := l.run(ctx, "curl", "-sS", "-o", "/dev/null", "--max-time", "60", "--limit-rate", "2M", "http://echo:8080/bytes?n=100000000")
			dl <- result{out, err}
		}()
		// Sleep: lets the download get under way, so the cut finds it
		// mid-flow: curl gives no event of its progress.
		time.Sleep(2 * time.Second)
		// Cut the laptop's connections to the API server, as a network
		// change or an API server restart would.
		if out, err := l.run(ctx, "ss", "-K", "dst", "10.201.0.1", "dport", "=", "6443"); err != nil {
			t.Fatalf("ss -K: %v %s", err, out)
		}
		start := time.Now()
		eventually(t, 30*time.Second, "new requests work again", func() error {
			out, err := l.curl(ctx, "http://echo."+ns+":8080/")
			if err != nil || !strings.Contains(out, "echo-") {
				return fmt.Errorf("%v %s", err, out)
			}
			return nil
		})
		t.Logf("new flows work %s after the cut", time.Since(start).Round(100*time.Millisecond))
		// The download first gets what the daemon's stream had already
		// received (up to its flow-control window, read at 2 MB/s), then a
		// reset: a clean end could pass for the whole answer.
		select {
		case r := <-dl:
			if r.err == nil || !strings.Contains(r.out, "reset by peer") {
				t.Errorf("the download in progress after a cut port-forward: %v %s; want a connection reset", r.err, r.out)
			}
			t.Logf("the download in progress was reset %s after the cut: %s", time.Since(start).Round(100*time.Millisecond), strings.TrimSpace(r.out))
		case <-time.After(30 * time.Second):
			t.Error("the download in progress hangs after the port-forward was cut")
		}
	})

	t.Run("agent killed: the port fails open, and a new agent takes over", func(t *testing.T) {
		// This namespace's agents only: other checkouts' tests (E2E_SLOT)
		// may have agents on the node too. The agent names its manager by
		// the Service's DNS name, or its ClusterIP.
		svc, err := c.client.CoreV1().Services(ns).Get(ctx, managerJob, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("pgrep", "-f", `kubectl-tele agent --manager=(`+managerJob+`\.`+ns+`\.|`+regexp.QuoteMeta(svc.Spec.ClusterIP)+`:)`).Output()
		pids := strings.Fields(string(out))
		if err != nil || len(pids) == 0 {
			t.Fatalf("no agent process on the node: %v", err)
		}
		for _, p := range pids {
			pid, _ := strconv.Atoi(p)
			syscall.Kill(pid, syscall.SIGKILL)
		}
		// At once: the kernel removed the agent's redirect with its socket.
		if a, b := routed(); !strings.HasPrefix(a, "echo-") || !strings.HasPrefix(b, "echo-") {
			t.Errorf("right after the agent died: %s, %s (want the app, never an error)", a, b)
		}
		eventually(t, 60*time.Second, "a new agent serves the intercept", func() error {
			if a, _ := routed(); a != "LAPTOP" {
				return fmt.Errorf("header request answered by %s", a)
			}
			return nil
		})
	})

	t.Run("rollout: the new pods get agents", func(t *testing.T) {
		if out, err := exec.Command(kindDir+"/.cache/kubernetes-v1.37.2/kubectl", "--kubeconfig", kubeconfig, "-n", ns,
			"rollout", "restart", "deploy/echo").CombinedOutput(); err != nil {
			t.Fatalf("rollout restart: %v %s", err, out)
		}
		eventually(t, 90*time.Second, "intercept on the new pods", func() error {
			d, err := c.client.AppsV1().Deployments(ns).Get(ctx, "echo", metav1.GetOptions{})
			if err != nil || d.Status.UpdatedReplicas != 1 || d.Status.ReadyReplicas != 1 || d.Status.Replicas != 1 {
				return fmt.Errorf("rollout not done")
			}
			// Only the new pod is left (an old one may still be terminating).
			if pods := c.podsOf(t, ns, "echo"); len(pods) != 1 || pods[0].DeletionTimestamp != nil {
				return fmt.Errorf("%d echo pods", len(pods))
			}
			for range 2 {
				if a, b := routed(); a != "LAPTOP" || !strings.HasPrefix(b, "echo-") {
					return fmt.Errorf("answered by %s, %s", a, b)
				}
			}
			return nil
		})
	})

	t.Run("local server stopped: a fast 502", func(t *testing.T) {
		if out, err := exec.Command("pkill", "-u", u.name, "-f", "--", "-name LAPTOP$").CombinedOutput(); err != nil {
			t.Fatalf("stop the local server: %v %s", err, out)
		}
		start := time.Now()
		out := c.runPod(t, ns, "get", "-H", "x-dev=alice", url)
		if !strings.Contains(out, "status 502") || !strings.Contains(out, "nothing answers on the laptop") {
			t.Errorf("want a 502 saying the laptop has nothing listening, got: %s", out)
		}
		t.Logf("502 after %s (pod start included)", time.Since(start).Round(time.Millisecond))
	})

	t.Run("daemon killed: traffic goes back to the app at once, quit repairs the laptop", func(t *testing.T) {
		st := l.status(t, ctx, u)
		if err := syscall.Kill(st.PID, syscall.SIGKILL); err != nil {
			t.Fatalf("kill daemon %d: %v", st.PID, err)
		}
		start := time.Now()
		// The manager sees the daemon's Dials stream end with its
		// port-forward, and the agent serves matching requests with the
		// app from then on (TestLaptopCrash times it under load); the
		// first client pod's start is most of this wait.
		eventually(t, 10*time.Second, "the app answers header requests again", func() error {
			if a, _ := routed(); !strings.HasPrefix(a, "echo-") {
				return fmt.Errorf("answered by %s", a)
			}
			return nil
		})
		t.Logf("traffic back at the app %s after the daemon died", time.Since(start).Round(time.Second))
		if out, err := l.tele(ctx, u, "quit"); err != nil {
			t.Fatalf("quit after a dead daemon: %v\n%s", err, out)
		}
		if got := l.resolvConf(t); got != resolv {
			t.Errorf("resolv.conf not restored:\n%s", got)
		}
		if l.hasDevice(ctx, "tele0") {
			t.Error("tele0 left")
		}
	})
}
