package state

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// RoutesFor computes the routes of pod's agent: every intercept that
// selects its pod and whose owner RBAC lets attach an agent to it
// (Intercept.Authz). It is also what the agent of a new pod gets once it
// connects. The pod's name, labels and declared ports are read; its
// agent's listen ports are chosen (agentPort) on first use.
func (t *Table) RoutesFor(pod *corev1.Pod) []*teleproto.AgentRoute {
	var out []*teleproto.AgentRoute
	for _, ic := range t.sorted() {
		if ic.Mech == mechNone || ic.Removing || !ic.Pods.Has(pod) || !ic.AllowedOn(pod.Name) {
			continue // not attached yet, or not (yet) allowed on this pod
		}
		r := &teleproto.AgentRoute{
			Intercept: ic.ID, Port: ic.PB.Port, AgentPort: t.agentPort(pod, ic),
			Mech: ic.Mech, HttpMatch: ic.PB.HttpMatch,
			ResetIdleConnections: ic.ResetIdle && ic.Mech == mechNftables,
			Tls:                  ic.TLS,
			LocalTls:             ic.LocalTLS,
		}
		if ic.Wiretap() {
			r.Kind = teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP
		}
		out = append(out, r)
	}
	return out
}

// MechFor returns the mechanism a pod without an agent gets its agent with
// (a new pod of an intercepted workload): that of the first intercept, by
// id, that selects it and whose owner RBAC lets attach one to it, mechNone if none does (or none has been attached
// yet: Pending has those being created). Only the pod's name
// and labels are read.
func (t *Table) MechFor(pod *corev1.Pod) teleproto.Mechanism {
	for _, ic := range t.sorted() {
		if ic.Mech != mechNone && !ic.Removing && ic.Pods.Has(pod) && ic.AllowedOn(pod.Name) {
			return ic.Mech
		}
	}
	return mechNone
}
