package state

import (
	"maps"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func set(ports ...uint32) map[uint32]bool {
	m := map[uint32]bool{}
	for _, p := range ports {
		m[p] = true
	}
	return m
}

// TestChooseAgentPort: an agent listens at 40000 + port%20000 unless that
// is taken, then at the next free port, wrapping within 40000..59999.
func TestChooseAgentPort(t *testing.T) {
	for _, tc := range []struct {
		name  string
		port  uint32
		taken map[uint32]bool
		want  uint32
	}{
		{"nothing taken", 8080, nil, 48080},
		{"the app declares the default", 8080, set(48080), 48081},
		{"a run of taken ports", 8080, set(48080, 48081, 48082), 48083},
		{"8080 and 28080 share a default: the second moves", 28080, set(8080, 48080), 48081},
		{"wraps at the top of the range", 19999, set(59999), 40000},
		{"wraps past taken ports", 19999, set(59999, 40000), 40001},
		{"a port below the range", 80, nil, 40080},
		{"a port in the range", 48080, nil, 48080},
	} {
		if got := ChooseAgentPort(tc.port, tc.taken); got != tc.want {
			t.Errorf("%s: ChooseAgentPort(%d, %v) = %d, want %d", tc.name, tc.port, tc.taken, got, tc.want)
		}
	}
}

// declaring returns an echo pod whose containers declare ports.
func declaring(name string, ports ...int32) *corev1.Pod {
	p := pod(name, echoLabels)
	for _, port := range ports {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "c", Ports: []corev1.ContainerPort{{ContainerPort: port}}})
	}
	p.Spec.InitContainers = []corev1.Container{{Name: "sidecar", Ports: []corev1.ContainerPort{{ContainerPort: 9901}}}}
	return p
}

func agentPorts(t *testing.T, tb *Table, p *corev1.Pod) map[uint32]uint32 {
	t.Helper()
	out := map[uint32]uint32{}
	for _, r := range tb.RoutesFor(p) {
		if prev, ok := out[r.GetPort()]; ok && prev != r.GetAgentPort() {
			t.Errorf("port %d: agent ports %d and %d", r.GetPort(), prev, r.GetAgentPort())
		}
		out[r.GetPort()] = r.GetAgentPort()
	}
	return out
}

// TestAgentPortsPerPod: each pod's agent gets listen ports that collide
// neither with each other nor with what the pod's containers declare, and
// that stay put while the pod lives, whatever is intercepted later.
func TestAgentPortsPerPod(t *testing.T) {
	a := allowAll(testIntercept(t, alice, "a", "echo", 8080))
	b := allowAll(testIntercept(t, bob, "b", "echo", 28080))
	tb := attached(t, a)
	for _, n := range []string{"plain", "busy", "sidecar"} {
		Decide(a, n, true)
		Decide(b, n, true)
	}
	plain, busy, sidecar := declaring("plain", 8080), declaring("busy", 8080, 48080), declaring("sidecar", 8080, 28080)
	for _, tc := range []struct {
		pod  *corev1.Pod
		want map[uint32]uint32
	}{
		{plain, map[uint32]uint32{8080: 48080}},
		{busy, map[uint32]uint32{8080: 48081}}, // the app declares 48080
	} {
		if got := agentPorts(t, tb, tc.pod); !maps.Equal(got, tc.want) {
			t.Errorf("pod %s: agent ports %v, want %v", tc.pod.Name, got, tc.want)
		}
	}
	// b's 28080 would share 48080 with a's 8080.
	b.Pods, b.Mech = echoPods, mechNftables
	if _, err := tb.Add(b); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		pod  *corev1.Pod
		want map[uint32]uint32
	}{
		{plain, map[uint32]uint32{8080: 48080, 28080: 48081}},
		{busy, map[uint32]uint32{8080: 48081, 28080: 48082}},
		// Asked first about both: 8080 takes the default, 28080 the next.
		{sidecar, map[uint32]uint32{8080: 48080, 28080: 48081}},
	} {
		if got := agentPorts(t, tb, tc.pod); !maps.Equal(got, tc.want) {
			t.Errorf("pod %s, after a second port: agent ports %v, want %v", tc.pod.Name, got, tc.want)
		}
	}
	// A replacement pod of the same name chooses anew.
	tb.ForgetPod("plain")
	Decide(a, "plain", true)
	Decide(b, "plain", true)
	if got, want := agentPorts(t, tb, declaring("plain", 48080)), (map[uint32]uint32{8080: 48081, 28080: 48082}); !maps.Equal(got, want) {
		t.Errorf("replaced pod: agent ports %v, want %v", got, want)
	}
}

// TestServiceAgentPort: the Service mechanism's port is one for every pod,
// free on each, and shared by intercepts of the same workload's port.
func TestServiceAgentPort(t *testing.T) {
	tb := NewTable(counter())
	svc := func(name string, port uint32) *Intercept {
		ic := allowAll(testIntercept(t, alice, name, "echo", port))
		ic.Pods, ic.Mech = echoPods, mechService
		if _, err := tb.Add(ic); err != nil {
			t.Fatal(err)
		}
		return ic
	}
	a := svc("a", 8080)
	pods := []*corev1.Pod{declaring("p1", 8080), declaring("p2", 8080, 48080)}
	if got := tb.ServiceAgentPort(a, pods); got != 48081 {
		t.Errorf("first: %d, want 48081 (p2 declares 48080)", got)
	}
	w := testWiretap(t, bob, "w", "echo", 8080)
	w.Pods, w.Mech = echoPods, mechService
	if _, err := tb.Add(w); err != nil {
		t.Fatal(err)
	}
	if got := tb.ServiceAgentPort(w, pods); got != 48081 {
		t.Errorf("a second of the same port: %d, want a's 48081", got)
	}
	Decide(a, "p1", true)
	if got := agentPorts(t, tb, pods[0]); got[8080] != 48081 {
		t.Errorf("p1's route: %v, want 8080 at 48081", got)
	}
}
