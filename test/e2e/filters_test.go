//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestInterceptFilters: a developer intercepts by path, by method, and by
// method with a header; requests from a pod, over HTTP/1.1 on one kept-alive
// connection and over h2c, reach the laptop when they match and the real
// pods when they do not; gRPC calls from a pod are routed by their method
// (their path) and by service. Who served each request is checked one by
// one, and the counts are logged.
func TestInterceptFilters(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "filters", nil)
	c.deployEcho(t, ns, "echo", 2)
	// The echo app has the gRPC server and the clients (hack/kind/apps/echo).
	bin, image := filepath.Join(kindDir, ".cache", "images", "echo"), echoImage
	c.deployFilterEcho(t, ns, "grpc", image)
	ctx := ctxFor(t, 15*time.Minute)

	l, u := newLaptop(t, 60), newTeleUser(t, 60, nil)
	dumpLogs(t, u)
	t.Cleanup(func() { l.tele(context.Background(), u, "quit") })
	if out, err := l.tele(ctx, u, "connect", "-n", ns); err != nil {
		t.Fatalf("connect: %v\n%s", err, out)
	}
	l.localServer(t, u, 7060, "LAPTOP")
	l.localServer(t, u, 7062, "LAPTOP-2")
	l.grpcServer(t, u, bin, 7061, "LAPTOP-GRPC")
	url := "http://echo:8080"

	// intercept starts an intercept named by --name, checks what intercept,
	// list and status say of it, and leaves it when the subtest ends.
	intercept := func(t *testing.T, said, listed string, args ...string) {
		t.Helper()
		out, err := l.tele(ctx, u, append([]string{"intercept"}, args...)...)
		if err != nil {
			t.Fatalf("intercept %q: %v\n%s", args, err, out)
		}
		if !strings.Contains(out, said) {
			t.Errorf("intercept %q said %q, want it to contain %q", args, out, said)
		}
		t.Logf("intercept: %s", strings.TrimSpace(out))
		name := args[slices.Index(args, "--name")+1]
		t.Cleanup(func() {
			if out, err := l.tele(context.Background(), u, "leave", name); err != nil {
				t.Errorf("leave %s: %v\n%s", name, err, out)
			}
		})
		out, _ = l.tele(ctx, u, "list", "--intercepts")
		if re := `(?m)^\S+ +\S+ +\S+ +` + regexp.QuoteMeta(name) + ` +\d+ +` + regexp.QuoteMeta(listed) + ` +\d+ `; !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("list: no line matches %s:\n%s", re, out)
		}
		out, _ = l.tele(ctx, u, "status")
		if line := regexp.MustCompile(`(?m)^Intercept: +` + regexp.QuoteMeta(name+": "+said) + `.*$`).FindString(out); line == "" {
			t.Errorf("status does not show intercept %s with %q:\n%s", name, said, out)
		} else {
			t.Logf("status: %s", line)
		}
	}
	h2 := [][]string{nil, {"-h2c"}}

	t.Run("path prefix", func(t *testing.T) {
		intercept(t, "requests with path starting with /api/", ":path^=/api/",
			"deploy/echo", "--name", "by-prefix", "--port", "7060:8080", "--http-path-prefix", "/api/")
		paths := []string{"/api/orders", "/web", "/api/orders?id=7", "/apix", "/api/", "/?next=/api/", "/api%2Forders"}
		want := []string{"LAPTOP", "echo-", "LAPTOP", "echo-", "LAPTOP", "echo-", "echo-"}
		for _, proto := range h2 {
			args := slices.Clone(proto)
			for _, p := range paths {
				args = append(args, url+p)
			}
			checkServed(t, fmt.Sprintf("GET by path prefix %v", proto), served(t, c, ns, args...), want)
		}
	})

	t.Run("exact path", func(t *testing.T) {
		intercept(t, "requests with path /api/orders", ":path=/api/orders",
			"deploy/echo", "--name", "by-path", "--port", "7060:8080", "--http-path", "/api/orders")
		args := []string{url + "/api/orders", url + "/api/orders/1", url + "/api/orders?x=1", url + "/API/orders"}
		checkServed(t, "GET by exact path", served(t, c, ns, args...), []string{"LAPTOP", "echo-", "LAPTOP", "echo-"})
	})

	t.Run("method, and method with a header", func(t *testing.T) {
		intercept(t, "requests with method POST", ":method=POST",
			"deploy/echo", "--name", "by-method", "--port", "7060:8080", "--http-method", "POST")
		intercept(t, "requests with method PUT and header x-dev=alice", ":method=PUT,x-dev=alice",
			"deploy/echo", "--name", "by-both", "--port", "7062:8080", "--http-method", "PUT", "--http-match", "x-dev=alice")
		// Request i carries x-dev: alice when the header list says @i.
		reqs := []string{"POST", "/a", "GET", "/a", "PUT", "/a", "PUT", "/a", "POST", "/b?q=1", "DELETE", "/b", "GET", "/b", "PATCH", "/a"}
		hdrs := []string{"-H", "x-dev=alice@1", "-H", "x-dev=alice@3", "-H", "x-dev=alice@4"}
		want := []string{"LAPTOP", "echo-", "echo-", "LAPTOP-2", "LAPTOP", "echo-", "echo-", "echo-"}
		for _, proto := range h2 {
			args := append(append([]string{"/echo", "http"}, proto...), hdrs...)
			for i := 0; i < len(reqs); i += 2 {
				args = append(args, reqs[i], url+reqs[i+1])
			}
			checkServed(t, fmt.Sprintf("by method %v", proto), c.runImage(t, ns, image, args...), want)
		}
	})

	t.Run("gRPC by method", func(t *testing.T) {
		intercept(t, "requests with path /grpc.health.v1.Health/Check", ":path=/grpc.health.v1.Health/Check",
			"deploy/grpc", "--name", "grpc-check", "--port", "7061:9000", "--http-path", "/grpc.health.v1.Health/Check")
		who := c.runImage(t, ns, image, "/echo", "grpc", "grpc:9000", "check", "watch", "check", "watch", "watch", "check")
		checkServed(t, "gRPC Check by path", who, []string{"LAPTOP-GRPC", "grpc-", "LAPTOP-GRPC", "grpc-", "grpc-", "LAPTOP-GRPC"})
	})

	t.Run("gRPC by service", func(t *testing.T) {
		intercept(t, "requests with path starting with /grpc.health.v1.Health/", ":path^=/grpc.health.v1.Health/",
			"deploy/grpc", "--name", "grpc-health", "--port", "7061:9000", "--http-path-prefix", "/grpc.health.v1.Health/")
		who := c.runImage(t, ns, image, "/echo", "grpc", "grpc:9000", "check", "watch", "check", "watch")
		checkServed(t, "gRPC Health by prefix", who, []string{"LAPTOP-GRPC", "LAPTOP-GRPC", "LAPTOP-GRPC", "LAPTOP-GRPC"})
	})

	t.Run("bad filters are refused before anything changes", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			says string
		}{
			{[]string{"--http-path", "api/orders"}, "a path starts with /"},
			{[]string{"--http-path-prefix", "/api?x=1"}, "the query string is not compared"},
			{[]string{"--http-method", "post"}, "write --http-method POST"},
			{[]string{"--http-match", ":path=/x"}, "a header name cannot start with ':'"},
		} {
			out, err := l.tele(ctx, u, append([]string{"intercept", "deploy/echo", "--name", "bad", "--port", "7060:8080"}, tc.args...)...)
			if err == nil || !strings.Contains(out, tc.says) {
				t.Errorf("intercept %q: %v, want an error saying %q:\n%s", tc.args, err, tc.says, out)
			}
		}
		if out, _ := l.tele(ctx, u, "list", "--intercepts"); strings.Contains(out, "bad") {
			t.Errorf("a refused intercept is listed:\n%s", out)
		}
	})
}

// checkServed compares who answered each request (a name, or the prefix of
// the workload's pod names) with want, and logs the counts.
func checkServed(t *testing.T, what string, who []string, want []string) {
	t.Helper()
	matched, matchedOK, other, otherOK := 0, 0, 0, 0
	for i, w := range want {
		toPods := strings.HasSuffix(w, "-")
		got := ""
		if i < len(who) {
			got = who[i]
		}
		ok := got == w || toPods && strings.HasPrefix(got, w)
		switch {
		case toPods:
			other++
			if ok {
				otherOK++
			}
		default:
			matched++
			if ok {
				matchedOK++
			}
		}
	}
	t.Logf("%s: %d matching requests, %d served by the laptop; %d others, %d served by the pods", what, matched, matchedOK, other, otherOK)
	if len(who) != len(want) || matchedOK != matched || otherOK != other {
		t.Errorf("%s: answered by %q, want %q", what, who, want)
	}
}

// runImage runs command in image in a pod to completion and returns who
// answered, one line each, as served does for the echo client.
func (c *cluster) runImage(t *testing.T, ns, image string, command ...string) []string {
	t.Helper()
	return whoAnswered(c.podLog(t, ns, c.startImage(t, ns, image, command...), true))
}

// deployFilterEcho runs the echo app's gRPC server as a Deployment of one pod
// with a Service of the same name (gRPC on 9000), and waits for it to be
// ready. Its clients wait for the Service's rules (echo grpc -wait).
func (c *cluster) deployFilterEcho(t *testing.T, ns, name, image string) {
	t.Helper()
	c.deploy(t, ns, name, 1, corev1.Container{
		Image:   image,
		Command: []string{"/echo", "grpc-serve", "-grpc", ":9000"},
		Ports:   []corev1.ContainerPort{{Name: "grpc", ContainerPort: 9000, Protocol: corev1.ProtocolTCP}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9000}},
			PeriodSeconds: 1,
		},
	})
}

// grpcServer runs the echo app's gRPC server on the laptop's localhost:port
// as u, the developer's process a gRPC intercept sends calls to.
func (l *laptop) grpcServer(t *testing.T, u *teleUser, bin string, port int, name string) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command("ip", "netns", "exec", l.name, "runuser", "-u", u.name, "--", bin, "grpc-serve", "-grpc", addr, "-name", name)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	eventually(t, 10*time.Second, "local gRPC server "+name, func() error {
		out, err := l.run(context.Background(), bin, "grpc", "-wait", "2s", addr, "check")
		if err == nil && strings.TrimSpace(out) != name {
			err = fmt.Errorf("answered %q", out)
		}
		return err
	})
}
