//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// agentContainers describes the agent containers of each pod of app, in the
// order they were added: name, state and the manager address it was given.
func (c *cluster) agentContainers(t *testing.T, ns, app string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, p := range c.podsOf(t, ns, app) {
		states := map[string]string{}
		for _, st := range p.Status.EphemeralContainerStatuses {
			switch {
			case st.State.Running != nil:
				states[st.Name] = "running"
			case st.State.Terminated != nil:
				states[st.Name] = fmt.Sprintf("ended(%s, exit %d)", st.State.Terminated.Reason, st.State.Terminated.ExitCode)
			default:
				states[st.Name] = "waiting"
			}
		}
		for _, ec := range p.Spec.EphemeralContainers {
			addr := ""
			for _, a := range ec.Args {
				if v, ok := strings.CutPrefix(a, "--manager="); ok {
					addr = v
				}
			}
			out[p.Name] = append(out[p.Name], fmt.Sprintf("%s %s %s", ec.Name, states[ec.Name], addr))
		}
	}
	return out
}

// TestReinstall (issue #15): after intercept, leave, quit, uninstall and a
// new connect (a new manager, Service and token), intercepting the same
// workloads works again with no pod restarted: each pod's earlier agent,
// refused by the new manager, exits, and a new one takes over. echo's pods
// resolve the manager's Service by name; plain's (dnsPolicy Default) were
// given its ClusterIP, which the new Service takes again.
func TestReinstall(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "reinstall", nil)
	c.deployEcho(t, ns, "echo", 2)
	c.deployEcho(t, ns, "plain", 1)
	setup := ctxFor(t, 2*time.Minute)
	patch := []byte(`{"spec":{"template":{"spec":{"dnsPolicy":"Default"}}}}`)
	if _, err := c.client.AppsV1().Deployments(ns).Patch(setup, "plain", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "plain's pod runs with dnsPolicy Default", func() error {
		pods := c.podsOf(t, ns, "plain")
		if len(pods) != 1 || pods[0].Spec.DNSPolicy != corev1.DNSDefault || pods[0].DeletionTimestamp != nil || !podReady(&pods[0]) {
			return fmt.Errorf("%d pods", len(pods))
		}
		return nil
	})
	before := c.podStates(t, ns, "echo")
	maps.Copy(before, c.podStates(t, ns, "plain"))
	ctx := ctxFor(t, 15*time.Minute)
	l := newLaptop(t, 55)
	u := newTeleUser(t, 55, nil)
	dumpLogs(t, u)
	t.Cleanup(func() { l.tele(context.Background(), u, "quit") })
	l.localServer(t, u, 7070, "LAPTOP")

	// routed: who answers, of each workload, 4 requests with the header
	// and 6 without (through the Service, so both of echo's pods).
	routed := func() error {
		args := []string{"-H", "x-dev=reinstall@0", "-H", "x-dev=reinstall@1", "-H", "x-dev=reinstall@2", "-H", "x-dev=reinstall@3",
			"-H", "x-dev=reinstall@10", "-H", "x-dev=reinstall@11", "-H", "x-dev=reinstall@12", "-H", "x-dev=reinstall@13"}
		for _, app := range []string{"echo", "plain"} {
			for range 10 {
				args = append(args, "http://"+app+":8080/")
			}
		}
		who := served(t, c, ns, args...)
		if len(who) != 20 {
			return fmt.Errorf("answers: %v", who)
		}
		for i, w := range who {
			app := []string{"echo-", "plain-"}[i/10]
			if i%10 < 4 && w != "LAPTOP" || i%10 >= 4 && !strings.HasPrefix(w, app) {
				return fmt.Errorf("request %d answered by %s: %v", i, w, who)
			}
		}
		return nil
	}
	intercept := func(step string) time.Duration {
		t.Helper()
		if out, err := l.tele(ctx, u, "connect", "-n", ns); err != nil {
			t.Fatalf("%s: connect: %v\n%s", step, err, out)
		}
		var took time.Duration
		for _, app := range []string{"echo", "plain"} {
			start := time.Now()
			out, err := l.tele(ctx, u, "intercept", "deploy/"+app, "--port", "7070:8080", "--http-match", "x-dev=reinstall")
			d := time.Since(start)
			if err != nil {
				t.Fatalf("%s: intercept %s after %v: %v\n%s", step, app, d.Round(time.Millisecond), err, out)
			}
			t.Logf("%s: intercept %s took %v", step, app, d.Round(time.Millisecond))
			took = max(took, d)
		}
		eventually(t, 20*time.Second, step+": matching requests reach the laptop, the others the app", routed)
		return took
	}

	intercept("first install")
	for _, args := range [][]string{{"leave", "echo"}, {"leave", "plain"}, {"quit"}, {"uninstall", "-n", ns}} {
		if out, err := l.tele(ctx, u, args...); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, app := range []string{"echo", "plain"} {
		for pod, agents := range c.agentContainers(t, ns, app) {
			t.Logf("after uninstall, pod %s: %s", pod, strings.Join(agents, "; "))
		}
	}

	took := intercept("after uninstall and connect")
	if took > 30*time.Second {
		t.Errorf("the second intercept took %v", took.Round(time.Millisecond))
	}

	eventually(t, 30*time.Second, "each pod's earlier agent has exited; its newest runs", func() error {
		for _, p := range append(c.podsOf(t, ns, "echo"), c.podsOf(t, ns, "plain")...) {
			var running []string
			for _, st := range p.Status.EphemeralContainerStatuses {
				if st.State.Running != nil {
					running = append(running, st.Name)
				}
			}
			if n := len(p.Spec.EphemeralContainers); n < 2 || len(running) != 1 || running[0] != p.Spec.EphemeralContainers[n-1].Name {
				return fmt.Errorf("pod %s: agents %d, running %v", p.Name, n, running)
			}
		}
		return nil
	})
	for _, app := range []string{"echo", "plain"} {
		for pod, agents := range c.agentContainers(t, ns, app) {
			t.Logf("after the second intercept, pod %s: %s", pod, strings.Join(agents, "; "))
		}
	}

	after := c.podStates(t, ns, "echo")
	maps.Copy(after, c.podStates(t, ns, "plain"))
	if len(after) != len(before) {
		t.Errorf("pods before %v, after %v", before, after)
	}
	for name, st := range before {
		if a, ok := after[name]; !ok || a != st {
			t.Errorf("pod %s restarted or replaced: before %+v, after %+v", name, st, a)
		}
	}
	// The app containers too, not only the first.
	for _, p := range append(c.podsOf(t, ns, "echo"), c.podsOf(t, ns, "plain")...) {
		for _, st := range p.Status.ContainerStatuses {
			if st.RestartCount != 0 {
				t.Errorf("pod %s container %s restarted %d times", p.Name, st.Name, st.RestartCount)
			}
		}
	}
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
