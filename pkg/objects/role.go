package objects

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Role returns the namespace-scoped Role the manager's ServiceAccount is bound
// to: exactly what the manager calls (TestMain checks it against the calls
// the unit tests record), and nothing cluster-scoped. The
// manager's best sources for CIDRs (networking.k8s.io servicecidrs, nodes)
// are cluster-scoped, so a Role cannot grant them; it falls back to what is
// granted here.
func Role(namespace, name string) *rbacv1.Role {
	return &rbacv1.Role{
		TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: namespace,
			Labels:    map[string]string{"app.kubernetes.io/managed-by": "kubectl-tele"},
		},
		Rules: []rbacv1.PolicyRule{
			{
				// get: a pod to add its agent to, and the manager's own labels.
				// list/watch: the controller's informer (new pods of
				// intercepted workloads); list also gives the pod CIDRs when
				// nodes are unreadable.
				APIGroups: []string{""},
				Resources: []string{"pods"},
				Verbs:     []string{"get", "list", "watch"},
			},
			{
				// get/list: ClusterIPs for the service-CIDR fallback and for
				// intercepts. create: with DryRun=All, so the API server names the
				// service CIDR when refusing an out-of-range ClusterIP, and the
				// Service agents reach the manager through. update: the
				// capability-free intercept retargets a Service's ports.
				APIGroups: []string{""},
				Resources: []string{"services"},
				Verbs:     []string{"get", "list", "create", "update"},
			},
			{
				// The agents' token (a Secret the agent containers read through
				// secretKeyRef, so it is not in the pods' specs), and the CA
				// of the agents' TLS link, which no pod refers to.
				APIGroups:     []string{""},
				Resources:     []string{"secrets"},
				ResourceNames: []string{AgentSecret, AgentCASecret},
				Verbs:         []string{"get"},
			},
			{
				// Creating cannot be limited to a name; reading can (above).
				APIGroups: []string{""},
				Resources: []string{"secrets"},
				Verbs:     []string{"create"},
			},
			{
				// Intercepts add the agent as an ephemeral container, as
				// kubectl debug does (one patch of the subresource),
				// without restarting the pod.
				APIGroups: []string{""},
				Resources: []string{"pods/ephemeralcontainers"},
				Verbs:     []string{"patch"},
			},
			{
				// Before acting for a laptop's session, the manager asks RBAC
				// whether the session's user may do it themselves (attach the
				// agent to each pod, retarget each Service): a namespaced
				// review, where SubjectAccessReview is cluster-scoped.
				APIGroups: []string{"authorization.k8s.io"},
				Resources: []string{"localsubjectaccessreviews"},
				Verbs:     []string{"create"},
			},
			{
				// The Service mechanism waits until a retargeted Service's
				// EndpointSlices show the agents' port.
				APIGroups: []string{"discovery.k8s.io"},
				Resources: []string{"endpointslices"},
				Verbs:     []string{"list", "watch"},
			},
		},
	}
}
