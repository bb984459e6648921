// Package objects names the Kubernetes objects kubectl-tele keeps in a
// namespace, which both the laptop (connect, uninstall) and the in-cluster
// manager refer to: their names, the manager's Role, and the annotations
// by which a retargeted Service is put back. It holds no client of its
// own beyond the helpers that undo what the manager did.
package objects

const (
	// AgentSecret holds the agents' token; agent containers read it
	// through secretKeyRef, so it is not in the pods' specs.
	AgentSecret = "kubectl-tele-agent"
	// AgentCASecret holds the namespace's CA for the agents' link: its
	// certificate and private key. Only the manager's Role reads it; no
	// pod refers to it, so no kubelet is given it either.
	AgentCASecret = "kubectl-tele-agent-ca"
	// AnnotOriginalTargetPort (+ the port's key, see PortKey) records a
	// retargeted Service port's original targetPort, so that a later
	// manager, or uninstall, can put it back.
	AnnotOriginalTargetPort = "kubectl-tele.io/original-target-port-"
)
