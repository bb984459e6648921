//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestInterceptPod: pod/NAME intercepts that pod alone, as the laptop
// resolved it (the manager reads no workload): its sibling, which carries
// the same labels, gets no agent and keeps serving matching requests
// itself.
func TestInterceptPod(t *testing.T) {
	c := newCluster(t)
	ns := c.namespace(t, "podtarget", nil)
	c.deployEcho(t, ns, "echo", 2)
	ctx := ctxFor(t, 5*time.Minute)
	d := connectDevelopers(ctx, t, ns, 25)
	l, u := d[0].l, d[0].u
	l.localServer(t, u, 7070, "LAPTOP-P")
	pods := c.podsOf(t, ns, "echo")
	if len(pods) != 2 {
		t.Fatalf("%d echo pods, want 2", len(pods))
	}
	target, sibling := pods[0], pods[1]
	out, err := l.tele(ctx, u, "intercept", "pod/"+target.Name, "--port", "7070:8080", "--http-match", "x-dev=pat")
	if err != nil {
		t.Fatalf("intercept: %v\n%s", err, out)
	}
	if !strings.Contains(out, "pods "+target.Name+")") {
		t.Errorf("intercept of pod/%s covers other pods: %s", target.Name, out)
	}
	for _, p := range []struct{ name, ip, matching string }{
		{target.Name, target.Status.PodIP, "LAPTOP-P"},
		{sibling.Name, sibling.Status.PodIP, sibling.Name},
	} {
		url := fmt.Sprintf("http://%s:8080/", p.ip)
		who := served(t, c, ns, "-H", "x-dev=pat@0", url, url)
		if len(who) != 2 || who[0] != p.matching || who[1] != p.name {
			t.Errorf("pod %s: answered by %v, want %s then %s", p.name, who, p.matching, p.name)
		}
	}
	for _, p := range c.podsOf(t, ns, "echo") {
		if n := len(p.Spec.EphemeralContainers); (p.Name == target.Name) != (n == 1) {
			t.Errorf("pod %s has %d ephemeral containers", p.Name, n)
		}
	}
	if out, err := l.tele(context.Background(), u, "leave", target.Name); err != nil {
		t.Errorf("leave: %v\n%s", err, out)
	}
}
