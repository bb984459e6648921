package state

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// The agents listen in [agentPortBase, agentPortBase+agentPortSpan), where
// teleproto.AgentListenPort puts each app port first.
const (
	agentPortBase = 40000
	agentPortSpan = 20000
)

// ChooseAgentPort returns where an agent listens for app port port: the
// first port from teleproto.AgentListenPort(port) on, wrapping within the
// agents' range, that taken does not hold. The default alone would give app
// ports 8080 and 28080 the same listener, and an agent could not listen
// where the app already does. If every port is taken (it cannot be: a pod
// declares far fewer), the default.
func ChooseAgentPort(port uint32, taken map[uint32]bool) uint32 {
	first := teleproto.AgentListenPort(port)
	for i := range uint32(agentPortSpan) {
		p := agentPortBase + (first-agentPortBase+i)%agentPortSpan
		if !taken[p] {
			return p
		}
	}
	return first
}

// DeclaredPorts adds to taken the ports pod's containers (init containers,
// sidecars among them, too) declare: an app may listen there, so an agent
// must not.
func DeclaredPorts(pod *corev1.Pod, taken map[uint32]bool) {
	for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for _, c := range cs {
			for _, p := range c.Ports {
				taken[uint32(p.ContainerPort)] = true
			}
		}
	}
}

// agentPort returns where pod's agent listens for ic's port, choosing it the
// first time it is asked and keeping it while the pod lives (ForgetPod), so
// that a later intercept of another port never moves an agent's listener.
// An intercept of the Service mechanism has one port on every pod (its
// Services target it: ServiceAgentPort).
func (t *Table) agentPort(pod *corev1.Pod, ic *Intercept) uint32 {
	if t.ports == nil {
		t.ports = map[string]map[uint32]uint32{}
	}
	ports := t.ports[pod.Name]
	if ports == nil {
		ports = map[uint32]uint32{}
		t.ports[pod.Name] = ports
	}
	if ic.Mech == mechService && ic.AgentPort != 0 {
		ports[ic.PB.Port] = ic.AgentPort
		return ic.AgentPort
	}
	if p, ok := ports[ic.PB.Port]; ok {
		return p
	}
	taken := t.takenOn(pod)
	p := ChooseAgentPort(ic.PB.Port, taken)
	ports[ic.PB.Port] = p
	return p
}

// takenOn is what an agent listener of pod must avoid: the ports its
// containers declare, the app ports intercepted on it and its agent's
// listeners already chosen.
func (t *Table) takenOn(pod *corev1.Pod) map[uint32]bool {
	taken := map[uint32]bool{}
	DeclaredPorts(pod, taken)
	for _, ic := range t.ics {
		if ic.Pods.Has(pod) {
			taken[ic.PB.Port] = true
		}
	}
	for _, p := range t.ports[pod.Name] {
		taken[p] = true
	}
	return taken
}

// ServiceAgentPort sets and returns ic.AgentPort, the one port the agents of
// every pod of ic listen on for its port, which the Services it retargets
// point at: that of another intercept of the same workload's port that
// retargets them already, else one that no pod of pods (those it selects
// now) has taken. Pods of one workload share a template, so a pod that
// joins later declares the same ports.
func (t *Table) ServiceAgentPort(ic *Intercept, pods []*corev1.Pod) uint32 {
	if ic.AgentPort != 0 {
		return ic.AgentPort
	}
	for _, o := range t.sorted() {
		if o != ic && o.Mech == mechService && o.AgentPort != 0 && o.PB.WorkloadName == ic.PB.WorkloadName && o.PB.Port == ic.PB.Port {
			ic.AgentPort = o.AgentPort
			return ic.AgentPort
		}
	}
	taken := map[uint32]bool{}
	for _, p := range pods {
		for port := range t.takenOn(p) {
			taken[port] = true
		}
		// Where a pod's agent already listens for this port, it can stay.
		if ap, ok := t.ports[p.Name][ic.PB.Port]; ok {
			delete(taken, ap)
		}
	}
	taken[ic.PB.Port] = true
	ic.AgentPort = ChooseAgentPort(ic.PB.Port, taken)
	return ic.AgentPort
}
