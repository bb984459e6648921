package state

import (
	"errors"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-tele/kubectl-tele/pkg/match"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// RoutesFor computes the routes of pod's agent, which said hello: every
// intercept that selects its pod, whose owner RBAC lets attach an agent to
// it (Intercept.Authz), and that the agent can apply
// (CreateIntercept refuses the others, naming the pod; this only keeps an
// older agent that reconnects from refusing all its routes for one). It is
// also what the agent of a new pod gets once it connects. The pod's name,
// labels and declared ports are read; its agent's listen ports are chosen
// (agentPort) on first use.
func (t *Table) RoutesFor(pod *corev1.Pod, hello *teleproto.AgentHello) []*teleproto.AgentRoute {
	var out []*teleproto.AgentRoute
	for _, ic := range t.sorted() {
		if ic.Mech == mechNone || ic.Removing || !ic.Pods.Has(pod) || !ic.AllowedOn(pod.Name) {
			continue // not attached yet, or not (yet) allowed on this pod
		}
		if !canApply(hello, ic.Match) || !canApplyTLS(hello, ic) || ic.Wiretap() && !canWiretap(hello) {
			continue
		}
		r := &teleproto.AgentRoute{
			Intercept: ic.ID, Port: ic.PB.Port, AgentPort: t.agentPort(pod, ic),
			Mech: ic.Mech, Mechanism: ic.Mech.Legacy(), HttpMatch: ic.PB.HttpMatch,
			ResetIdleConnections: ic.ResetIdle && ic.Mech == mechNftables,
			Tls:                  ic.TLS,
			LocalTls:             ic.LocalTLS,
		}
		if ic.Wiretap() {
			// Intercepts' routes stay as older managers sent them.
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

// AgentRefusal says why the agent that said hello cannot take ic with the
// mechanism mech (nil: it can), where its pod must not be left to the app:
// an intercept whose filters or TLS it would not apply would leave its
// pod's matching requests to the app, and a wiretap it would not apply,
// with the Service mechanism, would leave its pod refusing every client
// (the Service points at the agents' port, where it does not listen). An
// older agent merely left out of a wiretap otherwise is an uncovered pod.
func AgentRefusal(hello *teleproto.AgentHello, ic *Intercept, mech teleproto.Mechanism) error {
	switch {
	case !ic.Wiretap() && !canApply(hello, ic.Match):
		return errors.New("predates path and method filters: intercept with --http-match only, or restart the workload's pods (kubectl rollout restart) so that they get a current agent")
	case ic.Wiretap() && mech == mechService && !canWiretap(hello):
		return errors.New("predates wiretaps, and with the Service mechanism its pod would stop answering: restart the workload's pods (kubectl rollout restart) so that they get a current agent")
	case !canApplyTLS(hello, ic):
		return errors.New("predates TLS interception (--tls-secret): restart the workload's pods (kubectl rollout restart) so that they get a current agent, or intercept without --tls-secret")
	}
	return nil
}

// canApply reports whether an agent that said hello can apply routes with
// matcher m.
func canApply(hello *teleproto.AgentHello, m match.Matcher) bool {
	return !m.OnRequestLine() || slices.Contains(hello.GetFeatures(), teleproto.AgentFeature_AGENT_FEATURE_REQUEST_LINE_MATCH)
}

// canWiretap reports whether an agent that said hello applies wiretap
// routes: an older one would take them for intercepts.
func canWiretap(hello *teleproto.AgentHello) bool {
	return slices.Contains(hello.GetFeatures(), teleproto.AgentFeature_AGENT_FEATURE_WIRETAP)
}

// canApplyTLS reports whether an agent that said hello can apply the routes
// of intercept ic: one with a certificate needs AGENT_FEATURE_TLS (an older
// agent would take the route for a cleartext one and send the TLS bytes raw
// to the laptop). Pods whose agent cannot are left uncovered.
func canApplyTLS(hello *teleproto.AgentHello, ic *Intercept) bool {
	return ic.TLS == nil || slices.Contains(hello.GetFeatures(), teleproto.AgentFeature_AGENT_FEATURE_TLS)
}
