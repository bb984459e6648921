//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/kubectl-tele/kubectl-tele/pkg/objects"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// localServer runs the echo app on the laptop's localhost:port as u, the
// developer's process an intercept sends requests to.
func (l *laptop) localServer(t *testing.T, u *teleUser, port int, name string) {
	t.Helper()
	echoBin := filepath.Join(kindDir, ".cache", "images", "echo")
	cmd := exec.Command("ip", "netns", "exec", l.name, "runuser", "-u", u.name, "--",
		echoBin, "serve", "-http", fmt.Sprintf("127.0.0.1:%d", port), "-udp", "", "-name", name)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	eventually(t, 10*time.Second, "local server "+name, func() error {
		_, err := l.curl(context.Background(), fmt.Sprintf("http://127.0.0.1:%d/", port))
		return err
	})
}

type podState struct {
	uid      types.UID
	restarts int32
}

func (c *cluster) podStates(t *testing.T, ns, app string) map[string]podState {
	t.Helper()
	out := map[string]podState{}
	for _, p := range c.podsOf(t, ns, app) {
		out[p.Name] = podState{p.UID, p.Status.ContainerStatuses[0].RestartCount}
	}
	return out
}

// served runs `echo get` in a pod and returns who answered each request.
func served(t *testing.T, c *cluster, ns string, args ...string) []string {
	t.Helper()
	return whoAnswered(c.runPod(t, ns, append([]string{"get"}, args...)...))
}

// whoAnswered reads a client's log, one answer a line: the first word of
// each line is who served that request.
func whoAnswered(out string) []string {
	var who []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		who = append(who, strings.Fields(line + " ")[0])
	}
	return who
}

// TestIntercept: two developers intercept one workload with different
// headers at once, each under the default name (the workload's); each
// request, on one keep-alive connection and over h2c, reaches the right
// laptop or the real pods; each leaves their own echo, not the other's; a
// global intercept takes everything; leave gives the traffic back; nothing
// restarts.
func TestIntercept(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "intercept", nil)
	c.deployEcho(t, ns, "echo", 2)
	before := c.podStates(t, ns, "echo")
	ctx := ctxFor(t, 15*time.Minute)

	d := connectDevelopers(ctx, t, ns, 4, 5)
	la, ua, lb, ub := d[0].l, d[0].u, d[1].l, d[1].u
	la.localServer(t, ua, 7070, "LAPTOP-A")
	lb.localServer(t, ub, 7071, "LAPTOP-B")
	url := "http://echo:8080/"

	t.Run("header intercepts from two laptops", func(t *testing.T) {
		envFile := filepath.Join(ua.home, "echo.env")
		start := time.Now()
		out, err := la.tele(ctx, ua, "intercept", "deploy/echo", "--port", "7070:8080", "--http-match", "x-dev=alice", "--env-file", envFile)
		if err != nil {
			t.Fatalf("intercept A: %v\n%s", err, out)
		}
		t.Logf("intercept A (%s): %s", time.Since(start).Round(time.Millisecond), out)
		// No --name: names are per developer, so B's is echo too.
		out, err = lb.tele(ctx, ub, "intercept", "deployment/echo", "--port", "7071:http", "--http-match", "x-dev=bob")
		if err != nil {
			t.Fatalf("intercept B: %v\n%s", err, out)
		}
		env, err := os.ReadFile(envFile)
		if err != nil || !strings.Contains(string(env), "ECHO_TOKEN=s3cr3t-echo") || !strings.Contains(string(env), "GREETING=") {
			t.Errorf("--env-file: %v\n%s", err, env)
		}
		// Each laptop lists both echo intercepts, its own marked.
		for _, x := range []struct {
			l   *laptop
			u   *teleUser
			res []string
		}{
			{la, ua, []string{
				`(?m)^deployment/echo +2/2 +8080/http +echo +8080 +x-dev=alice +7070 +nftables +` + adminOn(ua) + ` \(you\) +2/2 +intercept +-$`,
				`(?m)^deployment/echo +2/2 +8080/http +echo +8080 +x-dev=bob +7071 +nftables +` + adminOn(ub) + ` +2/2 +intercept +-$`,
			}},
			{lb, ub, []string{
				`(?m)^deployment/echo +2/2 +8080/http +echo +8080 +x-dev=alice +7070 +nftables +` + adminOn(ua) + ` +2/2 +intercept +-$`,
				`(?m)^deployment/echo +2/2 +8080/http +echo +8080 +x-dev=bob +7071 +nftables +` + adminOn(ub) + ` \(you\) +2/2 +intercept +-$`,
			}},
		} {
			out, _ = x.l.tele(ctx, x.u, "list")
			for _, re := range x.res {
				if !regexp.MustCompile(re).MatchString(out) {
					t.Errorf("list on %s: no line matches %s:\n%s", x.l.name, re, out)
				}
			}
		}
	})

	t.Run("each request routed on its own headers", func(t *testing.T) {
		for _, proto := range [][]string{nil, {"-h2c"}} {
			args := append(append([]string{}, proto...), "-H", "x-dev=alice@0", "-H", "x-dev=bob@1", "-H", "x-dev=alice@3", url, url, url, url)
			who := served(t, c, ns, args...)
			if len(who) != 4 || who[0] != "LAPTOP-A" || who[1] != "LAPTOP-B" || !strings.HasPrefix(who[2], "echo-") || who[3] != "LAPTOP-A" {
				t.Errorf("%v: answered by %v, want LAPTOP-A LAPTOP-B echo-* LAPTOP-A", proto, who)
			}
		}
	})

	t.Run("a second identical match is refused", func(t *testing.T) {
		out, err := lb.tele(ctx, ub, "intercept", "deploy/echo", "--name", "again", "--port", "7071:8080", "--http-match", "x-dev=alice")
		if err == nil || !regexp.MustCompile(`already intercepted by `+adminOn(ua)+` \(intercept echo\)`).MatchString(out) {
			t.Errorf("duplicate match: %v\n%s", err, out)
		}
	})

	t.Run("B's leave echo ends B's, not A's", func(t *testing.T) {
		if out, err := lb.tele(ctx, ub, "leave", "echo"); err != nil {
			t.Fatalf("leave echo on B: %v\n%s", err, out)
		}
		who := served(t, c, ns, "-H", "x-dev=alice@0", "-H", "x-dev=bob@1", url, url)
		if len(who) != 2 || who[0] != "LAPTOP-A" || !strings.HasPrefix(who[1], "echo-") {
			t.Errorf("after B's leave: answered by %v, want LAPTOP-A echo-*", who)
		}
		out, _ := la.tele(ctx, ua, "list")
		if !regexp.MustCompile(`(?m)^deployment/echo +2/2 +8080/http +echo +8080 +x-dev=alice +7070 +nftables +`+adminOn(ua)+` \(you\) +2/2 +intercept +-$`).MatchString(out) ||
			strings.Contains(out, "x-dev=bob") {
			t.Errorf("list after B's leave, want A's echo only:\n%s", out)
		}
		// B has no echo left; A's is not B's to end.
		out, err := lb.tele(ctx, ub, "leave", "echo")
		if err == nil || !regexp.MustCompile(`not yours: it belongs to `+adminOn(ua)).MatchString(out) {
			t.Errorf("B leaves A's echo: %v\n%s", err, out)
		}
		if who := served(t, c, ns, "-H", "x-dev=alice@0", url); len(who) != 1 || who[0] != "LAPTOP-A" {
			t.Errorf("after B's refused leave: answered by %v, want LAPTOP-A", who)
		}
	})

	t.Run("leave gives the traffic back", func(t *testing.T) {
		if out, err := la.tele(ctx, ua, "leave", "echo"); err != nil {
			t.Fatalf("leave echo on A: %v\n%s", err, out)
		}
		who := served(t, c, ns, "-H", "x-dev=alice@0", "-H", "x-dev=bob@1", url, url)
		for _, w := range who {
			if !strings.HasPrefix(w, "echo-") {
				t.Errorf("after leave, answered by %v", who)
			}
		}
	})

	t.Run("a global intercept takes all traffic", func(t *testing.T) {
		if out, err := la.tele(ctx, ua, "intercept", "deploy/echo", "--port", "7070"); err != nil {
			t.Fatalf("global intercept: %v\n%s", err, out)
		}
		who := served(t, c, ns, "-H", "x-dev=bob@2", url, url, url)
		for _, w := range who {
			if w != "LAPTOP-A" {
				t.Errorf("global intercept: answered by %v", who)
			}
		}
		// B's default name is echo, as A's is: refused for the match, not the name.
		out, err := lb.tele(ctx, ub, "intercept", "deploy/echo", "--port", "7071:8080", "--http-match", "x-dev=bob")
		if err == nil || !regexp.MustCompile(`intercepted as a whole by `+adminOn(ua)+` \(intercept echo\)`).MatchString(out) {
			t.Errorf("header intercept under a global one: %v\n%s", err, out)
		}
		if out, err := la.tele(ctx, ua, "leave", "echo"); err != nil {
			t.Fatalf("leave: %v\n%s", err, out)
		}
		if who := served(t, c, ns, url); !strings.HasPrefix(who[0], "echo-") {
			t.Errorf("after leaving the global intercept: %v", who)
		}
	})

	t.Run("no failed request under load while intercepting and leaving", func(t *testing.T) {
		type result struct {
			OK, Failed int
			Servers    map[string]int
			FirstError string `json:"first_error"`
		}
		done := make(chan string, 1)
		go func() {
			done <- c.runPod(t, ns, "load", "-url", url, "-rps", "200", "-duration", "20s", "-H", "x-dev=alice")
		}()
		// Sleep: the load's first phase: 4 s of requests to the app before the
		// intercept starts.
		time.Sleep(4 * time.Second)
		if out, err := la.tele(ctx, ua, "intercept", "deploy/echo", "--port", "7070:8080", "--http-match", "x-dev=alice"); err != nil {
			t.Fatalf("intercept under load: %v\n%s", err, out)
		}
		// Sleep: the load's second phase: 6 s of requests to the laptop before
		// the leave.
		time.Sleep(6 * time.Second)
		if out, err := la.tele(ctx, ua, "leave", "echo"); err != nil {
			t.Fatalf("leave under load: %v\n%s", err, out)
		}
		out := <-done
		var r result
		if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil {
			t.Fatalf("load output: %v\n%s", err, out)
		}
		t.Logf("load: %d ok, %d failed, servers %v", r.OK, r.Failed, r.Servers)
		// The load's pooled connections were opened before this intercept
		// but after earlier ones, whose agents kept the port redirected:
		// they pass the agent, which routes them request by request, so
		// nearly every matching request of the 6 s reaches the laptop.
		if r.Servers["LAPTOP-A"] < 900 {
			t.Errorf("only %d matching requests reached the laptop during the 6 s intercept: %v", r.Servers["LAPTOP-A"], r.Servers)
		}
		if r.Failed != 0 || r.OK < 3500 {
			t.Errorf("load: %d ok, %d failed (first failures: %s)", r.OK, r.Failed, r.FirstError)
		}
	})

	t.Run("no pod restarted, one agent per pod", func(t *testing.T) {
		after := c.podStates(t, ns, "echo")
		if len(after) != len(before) {
			t.Errorf("pods changed: %v -> %v", before, after)
		}
		for name, st := range before {
			if after[name] != st {
				t.Errorf("pod %s: %+v -> %+v", name, st, after[name])
			}
		}
		for _, p := range c.podsOf(t, ns, "echo") {
			if n := len(p.Spec.EphemeralContainers); n != 1 {
				t.Errorf("pod %s has %d ephemeral containers, want 1 (reused)", p.Name, n)
			}
		}
	})

	t.Run("the redirect outlives leave, not the manager", func(t *testing.T) {
		pods := c.podsOf(t, ns, "echo")
		for _, p := range pods {
			if n := redirectRules(t, p.Status.PodIP); n != 1 {
				t.Errorf("pod %s after leave: %d redirect rules, want 1 (held while the manager runs)", p.Name, n)
			}
		}
		for _, x := range []struct {
			l *laptop
			u *teleUser
		}{{la, ua}, {lb, ub}} {
			if out, err := x.l.tele(ctx, x.u, "quit"); err != nil {
				t.Fatalf("quit: %v\n%s", err, out)
			}
		}
		if out, err := la.tele(ctx, ua, "uninstall", "-n", ns); err != nil {
			t.Fatalf("uninstall: %v\n%s", err, out)
		}
		for _, p := range pods {
			eventually(t, 30*time.Second, "pod "+p.Name+" without redirect after uninstall", func() error {
				if n := redirectRules(t, p.Status.PodIP); n != 0 {
					return fmt.Errorf("%d redirect rules", n)
				}
				return nil
			})
		}
	})
}

// redirectRules counts the agent's redirect rules in the network namespace
// of the pod with this IP (0 without the agent's table).
func redirectRules(t *testing.T, podIP string) int {
	t.Helper()
	out, err := exec.Command("ip", "-all", "netns", "exec", "ip", "-o", "-4", "addr", "show").Output()
	if err != nil {
		t.Fatalf("ip -all netns exec ip addr: %v", err)
	}
	// "netns NAME" headers, then that namespace's addresses.
	netns := ""
	for _, line := range strings.Split(string(out), "\n") {
		if name, ok := strings.CutPrefix(line, "netns: "); ok {
			netns = strings.TrimSpace(name)
			continue
		}
		if netns == "" || !strings.Contains(line, " inet "+podIP+"/") {
			continue
		}
		table, err := exec.Command("ip", "netns", "exec", netns, "nft", "list", "table", "inet", "kubectl_tele").Output()
		if err != nil {
			return 0 // no table
		}
		return strings.Count(string(table), "redirect to")
	}
	t.Fatalf("no network namespace has pod IP %s", podIP)
	return 0
}

// TestInterceptBadInput: each refusal says what to do and changes nothing.
func TestInterceptBadInput(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "icbad", nil)
	c.deployEcho(t, ns, "echo", 1)
	ctx := ctxFor(t, 5*time.Minute)
	l := newLaptop(t, 6)
	u := newTeleUser(t, 6, nil)
	dumpLogs(t, u)
	t.Cleanup(func() { l.tele(context.Background(), u, "quit") })
	if out, err := l.tele(ctx, u, "intercept", "deploy/echo", "--port", "7070"); err == nil || !strings.Contains(out, "kubectl tele connect") {
		t.Errorf("intercept before connect: %v\n%s", err, out)
	}
	if out, err := l.tele(ctx, u, "connect", "-n", ns); err != nil {
		t.Fatalf("connect: %v\n%s", err, out)
	}
	zero := int32(0)
	dep, _ := c.client.AppsV1().Deployments(ns).Get(ctx, "echo", metav1.GetOptions{})
	idle := dep.DeepCopy()
	idle.Name, idle.ResourceVersion, idle.UID = "idle", "", ""
	idle.Spec.Replicas = &zero
	idle.Spec.Selector.MatchLabels = map[string]string{"app": "idle"}
	idle.Spec.Template.Labels = map[string]string{"app": "idle"}
	if _, err := c.client.AppsV1().Deployments(ns).Create(ctx, idle, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"deploy/echo", "--port", "7070", "--http-match", "x-dev"}, "NAME=VALUE"},
		{[]string{"deploy/echo", "--port", "7070", "--http-match", "x-dev~=("}, "regex"},
		{[]string{"deploy/echo", "--port", "seventy"}, "--port"},
		{[]string{"deploy/nope", "--port", "7070"}, `"nope" not found`},
		{[]string{"deploy/echo", "--port", "7070:grpc"}, "grpc"},
		{[]string{"service/echo", "--port", "7070"}, "Deployment"},
		{[]string{"deploy/idle", "--port", "7070:8080"}, "no running pod"},
	} {
		out, err := l.tele(ctx, u, append([]string{"intercept"}, tc.args...)...)
		if err == nil || !strings.Contains(strings.ToLower(out), strings.ToLower(tc.want)) {
			t.Errorf("intercept %v: %v\n%s\nwant it to say %q", tc.args, err, out, tc.want)
		}
	}
	p := c.podsOf(t, ns, "echo")[0]
	if n := len(p.Spec.EphemeralContainers); n != 0 {
		t.Errorf("refused intercepts attached %d agents", n)
	}
	if out, _ := l.tele(ctx, u, "list", "--intercepts"); strings.TrimSpace(out) != "No intercepts in namespace "+ns+"." {
		t.Errorf("list --intercepts after refusals:\n%s", out)
	}
	if out, _ := l.tele(ctx, u, "list"); !regexp.MustCompile(`(?m)^deployment/echo +1/1 +8080/http +- *$`).MatchString(out) {
		t.Errorf("list after refusals, want deployment/echo not intercepted:\n%s", out)
	}
	// Kubernetes does not require a port to be declared: a numeric one that
	// no container declares is intercepted, with a warning saying so.
	out, err := l.tele(ctx, u, "intercept", "deploy/echo", "--port", "7070:9999")
	if err != nil || !strings.Contains(out, "no container of deployment/echo declares port 9999") {
		t.Errorf("intercept of an undeclared numeric port: %v\n%s", err, out)
	}
	if out, err := l.tele(ctx, u, "leave", "echo"); err != nil {
		t.Errorf("leave: %v\n%s", err, out)
	}
}

// TestInterceptBaseline: where Pod Security forbids NET_ADMIN, intercept
// works without it by pointing the Service at the agents, and restores it.
func TestInterceptBaseline(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "baseline", map[string]string{"pod-security.kubernetes.io/enforce": "baseline"})
	c.deployEcho(t, ns, "echo", 1)
	ctx := ctxFor(t, 5*time.Minute)
	l := newLaptop(t, 7)
	u := newTeleUser(t, 7, nil)
	dumpLogs(t, u)
	t.Cleanup(func() { l.tele(context.Background(), u, "quit") })
	if out, err := l.tele(ctx, u, "connect", "-n", ns); err != nil {
		t.Fatalf("connect: %v\n%s", err, out)
	}
	l.localServer(t, u, 7070, "LAPTOP-C")
	out, err := l.tele(ctx, u, "intercept", "deploy/echo", "--port", "7070:8080", "--http-match", "x-dev=carol")
	if err != nil {
		t.Fatalf("intercept: %v\n%s", err, out)
	}
	if !strings.Contains(out, "mechanism service") {
		t.Errorf("want the service mechanism: %s", out)
	}
	url := "http://echo:8080/"
	// The Service mechanism goes through kube-proxy, which applies the new
	// targetPort on its next sync, a moment after intercept returns.
	eventually(t, 30*time.Second, "the Service mechanism's route", func() error {
		if who := served(t, c, ns, "-H", "x-dev=carol@0", url, url); len(who) != 2 || who[0] != "LAPTOP-C" || !strings.HasPrefix(who[1], "echo-") {
			return fmt.Errorf("answered by %v", who)
		}
		return nil
	})
	if out, err := l.tele(ctx, u, "leave", "echo"); err != nil {
		t.Fatalf("leave: %v\n%s", err, out)
	}
	svc, err := c.client.CoreV1().Services(ns).Get(ctx, "echo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tp := svc.Spec.Ports[0].TargetPort.String(); tp != "http" {
		t.Errorf("Service targetPort after leave: %s, want http", tp)
	}
	if who := served(t, c, ns, "-H", "x-dev=carol", url); !strings.HasPrefix(who[0], "echo-") {
		t.Errorf("after leave: %v", who)
	}

	// A manager that dies with the Service still pointed at the agents
	// leaves the original targetPort in an annotation: uninstall puts it back.
	if out, err := l.tele(ctx, u, "quit"); err != nil {
		t.Fatalf("quit: %v\n%s", err, out)
	}
	svc, err = c.client.CoreV1().Services(ns).Get(ctx, "echo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	key := objects.AnnotOriginalTargetPort + svc.Spec.Ports[0].Name
	if svc.Annotations == nil {
		svc.Annotations = map[string]string{}
	}
	svc.Annotations[key] = "http"
	svc.Spec.Ports[0].TargetPort = intstr.FromInt32(int32(teleproto.AgentListenPort(8080)))
	if _, err := c.client.CoreV1().Services(ns).Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if out, err := l.tele(ctx, u, "uninstall", "-n", ns); err != nil {
		t.Fatalf("uninstall: %v\n%s", err, out)
	}
	svc, err = c.client.CoreV1().Services(ns).Get(ctx, "echo", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tp := svc.Spec.Ports[0].TargetPort.String(); tp != "http" || svc.Annotations[key] != "" {
		t.Errorf("after uninstall: targetPort %s, annotation %q; want http and none", tp, svc.Annotations[key])
	}
}

// adminOn is, as a regular expression, how list and the manager's messages
// name an intercept of u with the test cluster's admin kubeconfig: the
// identity the API server gives its client certificate, and u's laptop as
// a hint.
func adminOn(u *teleUser) string {
	return `kubernetes-admin \(on ` + regexp.QuoteMeta(u.name) + `@\S+\)`
}
