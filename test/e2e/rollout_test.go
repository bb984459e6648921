//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// loadResult is what the echo image's load -timeline prints.
type loadResult struct {
	OK         int            `json:"ok"`
	Failed     int            `json:"failed"`
	Servers    map[string]int `json:"servers"`
	FirstError string         `json:"first_error"`
	Timeline   []struct {
		T       int64          `json:"t"`
		OK      int            `json:"ok"`
		Failed  int            `json:"failed"`
		Servers map[string]int `json:"servers"`
	} `json:"timeline"`
}

// since sums the seconds of r's timeline from t on: answers by server, and
// failures.
func (r loadResult) since(t time.Time) (servers map[string]int, failed int) {
	servers = map[string]int{}
	for _, s := range r.Timeline {
		if s.T < t.Unix() {
			continue
		}
		failed += s.Failed
		for k, v := range s.Servers {
			servers[k] += v
		}
	}
	return servers, failed
}

// graceful makes a pod shut down as Kubernetes asks of a server behind a
// Service: it serves on for a few seconds after it is told to go (a preStop
// sleep), while kube-proxy takes its endpoint out.
func graceful(s *corev1.PodSpec) {
	s.TerminationGracePeriodSeconds = ptr.To[int64](10)
	s.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 3}}}
}

// TestInterceptPodTerminating: a request in flight to the laptop when its
// pod is deleted (a rollout, a node drain, kubectl delete pod) gets the
// laptop's answer: the pod's agent takes no new connection from then on,
// and lets the requests it carries finish (for up to 5 s) before it closes.
// The request is a POST, which a client does not send again on a new
// connection when the first one breaks.
func TestInterceptPodTerminating(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "terminating", nil)
	c.deployEcho(t, ns, "echo", 1, graceful)
	ctx := ctxFor(t, 5*time.Minute)
	l, u := newLaptop(t, 15), newTeleUser(t, 15, nil)
	dumpLogs(t, u)
	t.Cleanup(func() { l.tele(context.Background(), u, "quit") })
	if out, err := l.tele(ctx, u, "connect", "-n", ns); err != nil {
		t.Fatalf("connect: %v\n%s", err, out)
	}
	l.localServer(t, u, 7071, "LAPTOP")
	if out, err := l.tele(ctx, u, "intercept", "deploy/echo", "--port", "7071:8080", "--http-match", "x-dev=alice"); err != nil {
		t.Fatalf("intercept: %v\n%s", err, out)
	}
	pod := c.podsOf(t, ns, "echo")[0]
	client := c.startPod(t, ns, "get", "-X", "POST", "-H", "x-dev=alice", "http://echo:8080/slow?ms=4000")
	eventually(t, time.Minute, "the client running", func() error {
		p, err := c.client.CoreV1().Pods(ns).Get(ctx, client, metav1.GetOptions{})
		if err != nil || p.Status.Phase != corev1.PodRunning {
			return fmt.Errorf("client pod: %v %v", p.Status.Phase, err)
		}
		return nil
	})
	// Sleep: the request takes 4 s on the laptop; 1.5 s after the client
	// started, it is in flight (nothing tells when it reached the laptop).
	time.Sleep(1500 * time.Millisecond)
	// The deleted pod's agent log goes with the pod: followed from now on,
	// saved if the test fails.
	agentLog, err := c.client.CoreV1().Pods(ns).GetLogs(pod.Name, &corev1.PodLogOptions{Container: "tele-agent", Follow: true}).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	logDone := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(agentLog); logDone <- b }()
	t.Cleanup(func() {
		agentLog.Close()
		if b := <-logDone; t.Failed() || keepLogs {
			saveLog(t, ns+"_"+pod.Name+"_tele-agent-followed", b)
		}
	})
	deleted := time.Now()
	if err := c.client.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	out := strings.TrimSpace(c.podLog(t, ns, client, true))
	t.Logf("the POST in flight when its pod was deleted: %q, %s after the deletion", out, time.Since(deleted).Round(100*time.Millisecond))
	if who := strings.Fields(out + " ")[0]; who != "LAPTOP" {
		t.Errorf("the POST in flight when its pod was deleted got %q; want the laptop's answer", out)
	}
}

// TestRolloutIntercept: a rollout restart and a scale-up of an intercepted
// Deployment, under steady load from keep-alive clients, side by side with
// the same on a Deployment nobody intercepts. Once each completes, every
// matching request reaches the laptop within 5 s (the new pods get their
// agents as they appear, before they are Ready), and non-matching requests
// fail no more than on the Deployment without an intercept.
func TestRolloutIntercept(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "rollout", nil)
	// Both apps shut down gracefully: an app that closes its listener at
	// once has connections to it refused until kube-proxy takes its
	// endpoint out, on both Deployments alike, and on 2 cores how many
	// varies from run to run more than an agent could add (seen: 2 against
	// 7). With graceful apps what fails is what the agent does.
	c.deployEcho(t, ns, "echo", 2, graceful)
	c.deployEcho(t, ns, "plain", 2, graceful)
	ctx := ctxFor(t, 10*time.Minute)
	l := newLaptop(t, 45)
	u := newTeleUser(t, 45, nil)
	dumpLogs(t, u)
	t.Cleanup(func() { l.tele(context.Background(), u, "quit") })
	if out, err := l.tele(ctx, u, "connect", "-n", ns); err != nil {
		t.Fatalf("connect: %v\n%s", err, out)
	}
	l.localServer(t, u, 7070, "LAPTOP")
	if out, err := l.tele(ctx, u, "intercept", "deploy/echo", "--port", "7070:8080", "--http-match", "x-dev=alice"); err != nil {
		t.Fatalf("intercept: %v\n%s", err, out)
	}

	// Four keep-alive clients at 40 requests/s for 80 s: the intercepted
	// Deployment with and without the header, and the other one likewise.
	const loadFor = 80 * time.Second
	type load struct {
		name string
		ch   chan loadResult
	}
	start := func(name, svc, header string) load {
		ch := make(chan loadResult, 1)
		go func() {
			var r loadResult
			out := c.runPod(t, ns, "load", "-timeline", "-url", "http://"+svc+":8080/", "-rps", "40", "-duration", loadFor.String(), "-H", header)
			if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); err != nil {
				t.Errorf("load %s: %v: %s", name, err, out)
			}
			ch <- r
		}()
		return load{name, ch}
	}
	loads := []load{
		start("intercepted, matching", "echo", "x-dev=alice"),
		start("intercepted, other", "echo", "x-dev=bob"),
		start("plain, matching", "plain", "x-dev=alice"),
		start("plain, other", "plain", "x-dev=bob"),
	}
	// Until the load pods run and their connections are pooled.
	eventually(t, time.Minute, "load pods running", func() error {
		pods, err := c.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		n := 0
		for _, p := range pods.Items {
			if strings.HasPrefix(p.Name, "client-") && p.Status.Phase == "Running" {
				n++
			}
		}
		if n < len(loads) {
			return fmt.Errorf("%d load pods running", n)
		}
		return nil
	})
	// Sleep: 5 s of steady load through the intercept before the rollout, so
	// the baseline is in the results.
	time.Sleep(5 * time.Second)

	kubectl := func(args ...string) {
		t.Helper()
		args = append([]string{"--kubeconfig", kubeconfig, "-n", ns}, args...)
		if out, err := exec.CommandContext(ctx, kindDir+"/.cache/kubernetes-v1.37.2/kubectl", args...).CombinedOutput(); err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// complete waits for both Deployments' rollouts, as kubectl does.
	complete := func(what string) time.Time {
		t.Helper()
		began := time.Now()
		kubectl("rollout", "status", "deploy/echo", "deploy/plain", "--timeout=90s")
		// rollout status returns once the old pods are told to go; their
		// endpoints go with them, so the next seconds are what is measured.
		done := time.Now()
		t.Logf("%s: complete in %s", what, done.Sub(began).Round(100*time.Millisecond))
		return done
	}
	kubectl("rollout", "restart", "deploy/echo", "deploy/plain")
	rolled := complete("rollout restart")
	// Sleep: 20 s of load after the rollout settled, before the scale: the
	// results measure each phase.
	time.Sleep(20 * time.Second)
	kubectl("scale", "deploy/echo", "deploy/plain", "--replicas=3")
	scaled := complete("scale to 3")

	results := map[string]loadResult{}
	for _, ld := range loads {
		r := <-ld.ch
		results[ld.name] = r
		t.Logf("%s: %d ok, %d failed, %v %s", ld.name, r.OK, r.Failed, r.Servers, r.FirstError)
	}
	if t.Failed() {
		return
	}
	// The load ends loadFor after it began: the scale-up's 5 s window
	// must end before it, or there is nothing to measure.
	if last := results["intercepted, matching"].Timeline; len(last) == 0 || last[len(last)-1].T < scaled.Add(8*time.Second).Unix() {
		t.Fatalf("the load ended before the scale-up could be measured (scaled at %s)", scaled.Format(time.TimeOnly))
	}

	// After each event's 5 s, matching requests reach the laptop only.
	for _, ev := range []struct {
		what string
		at   time.Time
		end  time.Time
	}{{"rollout restart", rolled, scaled}, {"scale-up", scaled, time.Time{}}} {
		r := results["intercepted, matching"]
		servers, failed := r.since(ev.at.Add(5 * time.Second))
		if !ev.end.IsZero() {
			later, lfailed := r.since(ev.end)
			for k, v := range later {
				servers[k] -= v
			}
			failed -= lfailed
		}
		total := failed
		for _, v := range servers {
			total += v
		}
		t.Logf("%s, from 5 s after it completed: matching requests %v, %d failed", ev.what, servers, failed)
		if servers["LAPTOP"] != total || total == 0 {
			t.Errorf("%s: %d of %d matching requests reached the laptop from 5 s after it completed; want all", ev.what, servers["LAPTOP"], total)
		}
	}
	// Requests fail no more than without an intercept, give or take two
	// (the apps are graceful, so the baseline is about none): matching
	// ones too, whoever answers them while the pods change (seen before
	// the agent kept its table until its connections closed: 4 to 15
	// matching requests a run waited 10 s for an answer from a
	// terminating pod's agent).
	for _, kind := range []string{"other", "matching"} {
		if got, base := results["intercepted, "+kind].Failed, results["plain, "+kind].Failed; got > base+2 {
			t.Errorf("%s requests: %d failed on the intercepted Deployment, %d on the one without an intercept", kind, got, base)
		}
	}
	if r := results["intercepted, other"]; r.Servers["LAPTOP"] != 0 {
		t.Errorf("%d non-matching requests reached the laptop", r.Servers["LAPTOP"])
	}

	// list names the pods covered: all three.
	out, _ := l.tele(ctx, u, "list")
	if !regexp.MustCompile(`(?m)^deployment/echo +3/3 .* 3/3 +intercept +-$`).MatchString(out) {
		t.Errorf("list after the scale-up, want 3/3 pods covered:\n%s", out)
	}
}
