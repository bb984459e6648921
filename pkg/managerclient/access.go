package managerclient

import (
	"context"
	"fmt"
	"slices"
	"strings"

	authv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/component-helpers/auth/rbac/validation"
)

// access is one permission connect needs, as kubectl auth can-i names it;
// name, where set, is the one object it is needed on.
type access struct{ verb, group, resource, subresource, name string }

func (a access) String() string {
	r := a.resource
	if a.subresource != "" {
		r += "/" + a.subresource
	}
	if a.group != "" {
		r += "." + a.group
	}
	if a.name != "" {
		r += " " + a.name
	}
	return a.verb + " " + r
}

// What starting a manager needs, beyond using one (see docs/permissions.md).
var (
	useAccess = []access{
		{verb: "get", group: "batch", resource: "jobs"},
		{verb: "watch", group: "batch", resource: "jobs"}, // waitForPod watches the Job beside its pods
		{verb: "list", resource: "pods"},
		{verb: "create", resource: "pods", subresource: "portforward"},
	}
	createAccess = []access{
		{verb: "create", group: "batch", resource: "jobs"},
		{verb: "create", resource: "serviceaccounts"},
		{verb: "create", group: "rbac.authorization.k8s.io", resource: "roles"},
		{verb: "patch", group: "rbac.authorization.k8s.io", resource: "roles"}, // create applies the Role
		{verb: "create", group: "rbac.authorization.k8s.io", resource: "rolebindings"},
	}
)

// startAccess is what starting the manager in ns needs: createAccess, and
// everything the manager's Role grants, because the API server lets a user
// create a Role only with permissions they hold themselves. Asked up front,
// a missing one is named with the others, where RBAC's own refusal of the
// Role lists the whole Role.
func startAccess(role *rbacv1.Role) []access {
	out := append([]access{}, createAccess...)
	for _, r := range role.Rules {
		names := r.ResourceNames
		if len(names) == 0 {
			names = []string{""}
		}
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				res, sub, _ := strings.Cut(res, "/")
				for _, v := range r.Verbs {
					for _, n := range names {
						a := access{verb: v, group: g, resource: res, subresource: sub, name: n}
						if !slices.Contains(out, a) {
							out = append(out, a)
						}
					}
				}
			}
		}
	}
	return out
}

// rule is a as an RBAC rule, for validation.Covers.
func (a access) rule() rbacv1.PolicyRule {
	res := a.resource
	if a.subresource != "" {
		res += "/" + a.subresource
	}
	r := rbacv1.PolicyRule{Verbs: []string{a.verb}, APIGroups: []string{a.group}, Resources: []string{res}}
	if a.name != "" {
		r.ResourceNames = []string{a.name}
	}
	return r
}

// checkAccess checks whether the user may do what is needed, and names every
// missing permission at once rather than failing on the first. It asks once
// what the user may do in ns (a SelfSubjectRulesReview, as kubectl auth
// can-i --list does) and compares need with those rules as RBAC compares a
// Role's rules with its creator's (validation.Covers). What the rules do not
// show is asked one SelfSubjectAccessReview each: all of need where the
// authorizer lists no rules (webhook authorizers, which make the review
// incomplete), and what RBAC denies but another authorizer may allow. Both
// reviews are open to every authenticated user. One review for all, where a
// review each used up the burst of client-go's rate limiter (5 requests a
// second after 10) and cost a connect that starts a manager over a second.
func checkAccess(ctx context.Context, c kubernetes.Interface, ns string, need []access) error {
	var held []rbacv1.PolicyRule
	rr, err := c.AuthorizationV1().SelfSubjectRulesReviews().Create(ctx, &authv1.SelfSubjectRulesReview{
		Spec: authv1.SelfSubjectRulesReviewSpec{Namespace: ns},
	}, metav1.CreateOptions{})
	if err == nil {
		for _, r := range rr.Status.ResourceRules {
			held = append(held, rbacv1.PolicyRule{Verbs: r.Verbs, APIGroups: r.APIGroups, Resources: r.Resources, ResourceNames: r.ResourceNames})
		}
	} // else every permission is asked alone below, which says what failed
	var missing []string
	for _, a := range need {
		if ok, _ := validation.Covers(held, []rbacv1.PolicyRule{a.rule()}); ok {
			continue
		}
		r, err := c.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authv1.SelfSubjectAccessReview{
			Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authv1.ResourceAttributes{
				Namespace: ns, Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.subresource, Name: a.name,
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
		return fmt.Errorf("you may not %s in namespace %q, which kubectl tele needs to start its traffic manager there: ask for a Role granting it (docs/permissions.md has one), or connect to a namespace where the manager already runs with --manager-namespace",
			strings.Join(missing, ", "), ns)
	}
	return nil
}
