package managerclient

import (
	"context"
	"fmt"
	"strings"

	authv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// access is one permission connect needs, as kubectl auth can-i names it.
type access struct{ verb, group, resource, subresource string }

func (a access) String() string {
	r := a.resource
	if a.subresource != "" {
		r += "/" + a.subresource
	}
	if a.group != "" {
		r += "." + a.group
	}
	return a.verb + " " + r
}

// What starting a manager needs, beyond using one (see README "Permissions").
var (
	useAccess = []access{
		{"get", "batch", "jobs", ""},
		{"watch", "batch", "jobs", ""}, // waitForPod watches the Job beside its pods
		{"list", "", "pods", ""},
		{"create", "", "pods", "portforward"},
	}
	createAccess = []access{
		{"create", "batch", "jobs", ""},
		{"create", "", "serviceaccounts", ""},
		{"create", "rbac.authorization.k8s.io", "roles", ""},
		{"create", "rbac.authorization.k8s.io", "rolebindings", ""},
	}
)

// checkAccess asks the API server (SelfSubjectAccessReview, open to every
// authenticated user) whether the user may do what is needed, and names every
// missing permission at once rather than failing on the first.
func checkAccess(ctx context.Context, c kubernetes.Interface, ns string, need []access) error {
	var missing []string
	for _, a := range need {
		r, err := c.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authv1.SelfSubjectAccessReview{
			Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authv1.ResourceAttributes{
				Namespace: ns, Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.subresource,
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("check permission to %s in namespace %s: %w", a, ns, err)
		}
		if !r.Status.Allowed {
			missing = append(missing, a.String())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("you may not %s in namespace %q, which kubectl tele needs to start its traffic manager there: ask for a Role granting it (the README's \"Permissions\" section has one), or connect to a namespace where the manager already runs with --manager-namespace",
			strings.Join(missing, ", "), ns)
	}
	return nil
}
