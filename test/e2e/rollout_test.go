//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
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

// TestRolloutIntercept: a rollout restart and a scale-up of an intercepted
// Deployment, under steady load from keep-alive clients, side by side with
// the same on a Deployment nobody intercepts. Once each completes, every
// matching request reaches the laptop within 5 s (the new pods get their
// agents as they appear, before they are Ready), and non-matching requests
// fail no more than on the Deployment without an intercept.
func TestRolloutIntercept(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "rollout", nil)
	// Both apps shut down as Kubernetes asks of a server behind a Service:
	// they serve on for a few seconds after the pod is told to go (a
	// preStop sleep), while kube-proxy takes their endpoints out. An app
	// that closes its listener at once has connections to it refused until
	// then, on both Deployments alike, and on 2 cores how many varies from
	// run to run more than an agent could add (seen: 2 against 7). With
	// graceful apps what fails is what the agent does.
	graceful := func(s *corev1.PodSpec) {
		s.TerminationGracePeriodSeconds = ptr.To[int64](10)
		s.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 3}}}
	}
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
