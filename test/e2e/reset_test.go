//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestResetReachesTheDestination: a laptop program's connection into the
// cluster that ends in a reset (the program crashed, or closed with
// SO_LINGER 0) is reset at its destination too: the app in the cluster does
// not keep, for as long as its own timeouts allow, a connection nobody
// holds. (It did: the daemon's end of the flow waited for the manager,
// which waited for the app.)
func TestResetReachesTheDestination(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "reset", nil)
	c.deployEcho(t, ns, "echo", 1)
	ctx := ctxFor(t, 5*time.Minute)
	svc, err := c.client.CoreV1().Services(ns).Get(ctx, "echo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l, u := newLaptop(t, 13), newTeleUser(t, 13, nil)
	dumpLogs(t, u)
	t.Cleanup(func() { l.tele(context.Background(), u, "quit") })
	if out, err := l.tele(ctx, u, "connect", "-n", ns); err != nil {
		t.Fatalf("connect: %v\n%s", err, out)
	}
	mgr, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + managerJob})
	if err != nil || len(mgr.Items) != 1 {
		t.Fatalf("manager pods: %v %v", mgr, err)
	}
	managerIP := mgr.Items[0].Status.PodIP
	app := podProcess(t, c, ns, "app=echo", "/echo serve")
	// The app's connections from the manager (whose flows dial from its
	// pod), as the app's own network namespace has them.
	fromManager := func() int {
		out, err := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(app), "-n", "ss", "-Htn", "state", "established", "( sport = :8080 )", "dst", managerIP).Output()
		if err != nil {
			t.Fatalf("ss in the app's namespace: %v", err)
		}
		return len(strings.Fields(strings.TrimSpace(string(out)))) / 4 // Recv-Q Send-Q Local Peer
	}
	before := fromManager()

	conn := l.dialTCP(t, net.JoinHostPort(svc.Spec.ClusterIP, "8080"))
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: echo\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("a request over the tunnel: %v", err)
	}
	resp.Body.Close()
	if n := fromManager(); n != before+1 {
		t.Fatalf("the app has %d connections from the manager during the request's kept-alive connection, want %d", n, before+1)
	}
	conn.SetLinger(0)
	conn.Close() // a reset
	start := time.Now()
	eventually(t, 10*time.Second, "the app's end of the reset connection gone", func() error {
		if n := fromManager(); n > before {
			return fmt.Errorf("%d connections from the manager", n)
		}
		return nil
	})
	t.Logf("the app's connection ended %s after the laptop's reset", time.Since(start).Round(time.Millisecond))
}

// dialTCP connects to addr from inside the laptop's network namespace, as
// a program on the laptop would.
func (l *laptop) dialTCP(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	res := make(chan result, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine, and so never
		// goes back to the runtime in the laptop's namespace. The socket
		// keeps the namespace it was made in.
		runtime.LockOSThread()
		ns, err := os.Open("/var/run/netns/" + l.name)
		if err != nil {
			res <- result{nil, err}
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			res <- result{nil, err}
			return
		}
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		res <- result{c, err}
	}()
	r := <-res
	if r.err != nil {
		t.Fatalf("dial %s from %s: %v", addr, l.name, r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c.(*net.TCPConn)
}
