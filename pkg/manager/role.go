package manager

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Role returns the namespace-scoped Role the manager's ServiceAccount is bound
// to: exactly what the manager uses, and nothing cluster-scoped. The
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
				// Pod IPs give the pod CIDRs when nodes are unreadable; intercepts
				// find and watch the pods of a workload.
				APIGroups: []string{""},
				Resources: []string{"pods"},
				Verbs:     []string{"get", "list", "watch"},
			},
			{
				// get/list: ClusterIPs for the service-CIDR fallback and for
				// intercepts. create: with DryRun=All, so the API server names the
				// service CIDR when refusing an out-of-range ClusterIP, and the
				// Service agents reach the manager through. update/patch: the
				// capability-free intercept retargets a Service's ports.
				APIGroups: []string{""},
				Resources: []string{"services"},
				Verbs:     []string{"get", "list", "create", "update", "patch"},
			},
			{
				// The agents' token (a Secret the agent containers read through
				// secretKeyRef, so it is not in the pods' specs).
				APIGroups:     []string{""},
				Resources:     []string{"secrets"},
				ResourceNames: []string{AgentSecret},
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
				// kubectl debug does, without restarting the pod.
				APIGroups: []string{""},
				Resources: []string{"pods/ephemeralcontainers"},
				Verbs:     []string{"get", "patch", "update"},
			},
			{
				// Intercepts resolve deploy/x, rs/x and sts/x to their pods.
				APIGroups: []string{"apps"},
				Resources: []string{"deployments", "replicasets", "statefulsets"},
				Verbs:     []string{"get", "list", "watch"},
			},
			{
				// Intercepts follow which pods back a Service.
				APIGroups: []string{""},
				Resources: []string{"endpoints"},
				Verbs:     []string{"get", "list", "watch"},
			},
			{
				APIGroups: []string{"discovery.k8s.io"},
				Resources: []string{"endpointslices"},
				Verbs:     []string{"get", "list", "watch"},
			},
			{
				// Intercepts record what they did to a workload where
				// kubectl describe shows it.
				APIGroups: []string{"", "events.k8s.io"},
				Resources: []string{"events"},
				Verbs:     []string{"create"},
			},
		},
	}
}
