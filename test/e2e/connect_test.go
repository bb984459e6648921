//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const managerJob = "kubectl-tele-manager"

// TestConnect: two laptops that reach only the API server connect to one
// namespace as ordinary users, reach Services by every name form, ClusterIPs,
// pod IPs, TCP and UDP, share one manager, and quit leaving nothing behind;
// the manager then goes away by itself.
func TestConnect(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "connect", nil)
	c.deployEcho(t, ns, "echo", 1)
	pod := c.podsOf(t, ns, "echo")[0]
	ctx := ctxFor(t, 10*time.Minute)
	svc, err := c.client.CoreV1().Services(ns).Get(ctx, "echo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	l1, l2 := newLaptop(t, 1), newLaptop(t, 2)
	u1, u2 := newTeleUser(t, 1, nil), newTeleUser(t, 2, nil)
	dumpLogs(t, u1)
	dumpLogs(t, u2)
	resolv1, resolv2 := l1.resolvConf(t), l2.resolvConf(t)
	t.Cleanup(func() { // a failed test must not leave sessions running
		l1.tele(context.Background(), u1, "quit")
		l2.tele(context.Background(), u2, "quit")
	})

	urls := []string{
		"http://echo." + ns + ":8080/",
		"http://echo." + ns + ".svc.cluster.local:8080/",
		"http://echo:8080/",
		"http://" + svc.Spec.ClusterIP + ":8080/",
		"http://" + pod.Status.PodIP + ":8080/",
	}
	t.Run("before connect nothing is reachable", func(t *testing.T) {
		for _, u := range urls {
			if out, err := l1.curl(ctx, u); err == nil {
				t.Errorf("%s reachable before connect: %s", u, out)
			}
		}
	})

	t.Run("connect as an ordinary user", func(t *testing.T) {
		out, err := l1.tele(ctx, u1, "connect", "-n", ns, "--manager-idle-timeout=10s")
		if err != nil {
			t.Fatalf("connect: %v\n%s", err, out)
		}
		t.Logf("connect said:\n%s", out)
		for _, want := range []string{"starting the traffic manager", "running", "creating TUN device", "Connected to namespace " + ns} {
			if !strings.Contains(out, want) {
				t.Errorf("connect output lacks %q", want)
			}
		}
		if root := l1.rootProcesses(t); len(root) > 0 {
			t.Errorf("processes of the session run as root after connect: %v", root)
		}
	})

	t.Run("every name form, ClusterIP and pod IP answer", func(t *testing.T) {
		for _, u := range urls {
			out, err := l1.curl(ctx, u)
			if err != nil || !strings.Contains(out, pod.Name) {
				t.Errorf("GET %s: %v %s", u, err, out)
			}
		}
	})

	t.Run("a closed port is refused at connect, as from a pod", func(t *testing.T) {
		// The manager dials before the laptop answers the SYN: curl fails
		// to connect (exit 7), not with a reset after connecting (56), and
		// a wait-for-port loop does not take the port for open.
		start := time.Now()
		out, err := l1.curl(ctx, "http://"+pod.Status.PodIP+":9999/")
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 7 {
			t.Errorf("curl to a closed port: %v %s; want exit 7, failed to connect", err, out)
		}
		t.Logf("refused in %s: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
	})

	t.Run("UDP", func(t *testing.T) {
		echoBin := filepath.Join(kindDir, ".cache", "images", "echo")
		for _, addr := range []string{"echo." + ns + ":9090", pod.Status.PodIP + ":9090"} {
			out, err := l1.as(ctx, u1, echoBin, "udp", addr, "ping-udp")
			if err != nil || !strings.Contains(out, pod.Name+": ping-udp") {
				t.Errorf("UDP exchange with %s: %v %s", addr, err, out)
			}
		}
	})

	t.Run("status", func(t *testing.T) {
		st := l1.status(t, ctx, u1)
		if st.Phase != "connected" || st.Namespace != ns || st.Context != "tele-local" || st.ManagerPod == "" ||
			st.Device != "tele0" || len(st.Routes) == 0 || st.DNS.Mode != "resolv.conf" || st.DNS.Nameserver != "10.96.0.10" {
			t.Errorf("status -o json: %+v", st)
		}
		if _, err := os.Stat(st.LogFile); err != nil || !strings.HasPrefix(st.LogFile, u1.home) {
			t.Errorf("log file %q: %v", st.LogFile, err)
		}
		if out, err := l1.tele(ctx, u1, "status"); err != nil || !strings.Contains(out, "Daemon log:") {
			t.Errorf("status: %v %s", err, out)
		}
	})

	t.Run("a second laptop shares the manager", func(t *testing.T) {
		out, err := l2.tele(ctx, u2, "connect", "-n", ns, "--manager-idle-timeout=10s")
		if err != nil {
			t.Fatalf("connect laptop 2: %v\n%s", err, out)
		}
		if out, err := l2.curl(ctx, urls[0]); err != nil || !strings.Contains(out, pod.Name) {
			t.Errorf("laptop 2: %v %s", err, out)
		}
		if out, err := l1.curl(ctx, urls[0]); err != nil || !strings.Contains(out, pod.Name) {
			t.Errorf("laptop 1 after laptop 2 connected: %v %s", err, out)
		}
		if p1, p2 := l1.status(t, ctx, u1).ManagerPod, l2.status(t, ctx, u2).ManagerPod; p1 != p2 {
			t.Errorf("two managers: %s and %s", p1, p2)
		}
		pods, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + managerJob})
		if err != nil || len(pods.Items) != 1 {
			t.Errorf("want one manager pod, got %d (%v)", len(pods.Items), err)
		}
	})

	t.Run("connecting again elsewhere is refused", func(t *testing.T) {
		out, err := l1.tele(ctx, u1, "connect", "-n", "default")
		if err == nil || !strings.Contains(out, "already connected to namespace "+ns) || !strings.Contains(out, "kubectl tele quit") {
			t.Errorf("second connect: %v\n%s", err, out)
		}
	})

	t.Run("quit restores everything", func(t *testing.T) {
		for _, x := range []struct {
			l      *laptop
			u      *teleUser
			resolv string
		}{{l1, u1, resolv1}, {l2, u2, resolv2}} {
			if out, err := x.l.tele(ctx, x.u, "quit"); err != nil {
				t.Fatalf("quit: %v\n%s", err, out)
			}
			if got := x.l.resolvConf(t); got != x.resolv {
				t.Errorf("%s: resolv.conf after quit differs:\n%s\nwant:\n%s", x.l.name, got, x.resolv)
			}
			if x.l.hasDevice(ctx, "tele0") {
				t.Errorf("%s: tele0 still there after quit", x.l.name)
			}
			if st := x.l.status(t, ctx, x.u); st.Phase != "disconnected" {
				t.Errorf("%s: status after quit: %+v", x.l.name, st)
			}
			if out, err := x.l.curl(ctx, urls[0]); err == nil {
				t.Errorf("%s: still reaches the cluster after quit: %s", x.l.name, out)
			}
		}
	})

	t.Run("the idle manager removes itself", func(t *testing.T) {
		eventually(t, 2*time.Minute, "manager Job still there", func() error {
			_, err := c.client.BatchV1().Jobs(ns).Get(ctx, managerJob, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("job %s/%s exists (err %v)", ns, managerJob, err)
		})
	})

	t.Run("uninstall leaves nothing of kubectl-tele in the namespace", func(t *testing.T) {
		if out, err := l1.tele(ctx, u1, "uninstall", "-n", ns); err != nil {
			t.Fatalf("uninstall: %v\n%s", err, out)
		}
		var left []string
		if sa, err := c.client.CoreV1().ServiceAccounts(ns).Get(ctx, managerJob, metav1.GetOptions{}); err == nil {
			left = append(left, "serviceaccount "+sa.Name)
		}
		if r, err := c.client.RbacV1().Roles(ns).Get(ctx, managerJob, metav1.GetOptions{}); err == nil {
			left = append(left, "role "+r.Name)
		}
		if rb, err := c.client.RbacV1().RoleBindings(ns).Get(ctx, managerJob, metav1.GetOptions{}); err == nil {
			left = append(left, "rolebinding "+rb.Name)
		}
		for _, name := range []string{"kubectl-tele-agent", "kubectl-tele-agent-ca"} {
			if s, err := c.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
				left = append(left, "secret "+s.Name)
			}
		}
		if s, err := c.client.CoreV1().Services(ns).Get(ctx, managerJob, metav1.GetOptions{}); err == nil {
			left = append(left, "service "+s.Name)
		}
		if len(left) > 0 {
			t.Errorf("left after uninstall: %v", left)
		}
	})
}
