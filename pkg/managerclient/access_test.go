package managerclient

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	authv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-tele/kubectl-tele/pkg/objects"
)

// TestStartAccess: starting a manager checks, besides creating its
// objects, every permission its Role grants (a user may create a Role only
// with permissions they hold), by name where the Role names the object, so
// that a user whose Role lacks a grant is told which one is missing, all
// at once, before anything is created.
func TestStartAccess(t *testing.T) {
	role := objects.Role("ns", Name)
	need := startAccess(role)
	checked := map[string]bool{}
	for _, a := range need {
		res := a.resource
		if a.subresource != "" {
			res += "/" + a.subresource
		}
		checked[a.verb+" "+a.group+"/"+res] = true
	}
	for _, r := range role.Rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					if !checked[v+" "+g+"/"+res] {
						t.Errorf("the Role grants %s %s/%s, which connect does not check", v, g, res)
					}
				}
			}
		}
	}
	denied := map[string]bool{
		"patch pods/ephemeralcontainers":     true,
		"get secrets " + objects.AgentSecret: true,
	}
	cs := fake.NewClientset()
	var asked []string
	cs.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		ra := a.(k8stesting.CreateAction).GetObject().(*authv1.SelfSubjectAccessReview).Spec.ResourceAttributes
		got := access{verb: ra.Verb, group: ra.Group, resource: ra.Resource, subresource: ra.Subresource, name: ra.Name}.String()
		asked = append(asked, got)
		return true, &authv1.SelfSubjectAccessReview{Status: authv1.SubjectAccessReviewStatus{Allowed: !denied[got]}}, nil
	})
	err := checkAccess(context.Background(), cs, "ns", need)
	if err == nil {
		t.Fatalf("allowed; asked %v", asked)
	}
	for d := range denied {
		if !strings.Contains(err.Error(), d) {
			t.Errorf("%v: does not name %q", err, d)
		}
	}
	if strings.Contains(err.Error(), "create jobs") {
		t.Errorf("%v: names a permission the user has", err)
	}
}

// TestCheckAccessAsksOnce: what the user's rules in the namespace cover
// (one SelfSubjectRulesReview) is not asked again; only the rest is, one
// SelfSubjectAccessReview each, and what those deny is named.
func TestCheckAccessAsksOnce(t *testing.T) {
	need := startAccess(objects.Role("ns", Name))
	tests := []struct {
		name   string
		rules  []authv1.ResourceRule
		review error // the rules review fails
		asked  []string
	}{
		{
			name:  "everything, as an admin's rules say",
			rules: []authv1.ResourceRule{{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}},
		},
		{
			name: "all but the agents' Secrets by name",
			rules: []authv1.ResourceRule{
				{Verbs: []string{"*"}, APIGroups: []string{"batch", "rbac.authorization.k8s.io", "discovery.k8s.io", "authorization.k8s.io"}, Resources: []string{"*"}},
				{Verbs: []string{"*"}, APIGroups: []string{""}, Resources: []string{"pods", "pods/portforward", "pods/ephemeralcontainers", "serviceaccounts", "services"}},
				{Verbs: []string{"create"}, APIGroups: []string{""}, Resources: []string{"secrets"}},
				{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{"another"}},
			},
			asked: []string{"get secrets " + objects.AgentSecret, "get secrets " + objects.AgentCASecret},
		},
		{
			name:   "no rules listed (a webhook authorizer): every one asked",
			review: errors.New("rules review refused"),
			asked: func() (out []string) {
				for _, a := range need {
					out = append(out, a.String())
				}
				return out
			}(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := fake.NewClientset()
			cs.PrependReactor("create", "selfsubjectrulesreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
				if ns := a.(k8stesting.CreateAction).GetObject().(*authv1.SelfSubjectRulesReview).Spec.Namespace; ns != "ns" {
					t.Errorf("rules review of namespace %q", ns)
				}
				return true, &authv1.SelfSubjectRulesReview{Status: authv1.SubjectRulesReviewStatus{ResourceRules: tt.rules}}, tt.review
			})
			var asked []string
			cs.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
				ra := a.(k8stesting.CreateAction).GetObject().(*authv1.SelfSubjectAccessReview).Spec.ResourceAttributes
				got := access{verb: ra.Verb, group: ra.Group, resource: ra.Resource, subresource: ra.Subresource, name: ra.Name}.String()
				asked = append(asked, got)
				return true, &authv1.SelfSubjectAccessReview{Status: authv1.SubjectAccessReviewStatus{Allowed: false}}, nil
			})
			err := checkAccess(context.Background(), cs, "ns", need)
			if !slices.Equal(asked, tt.asked) {
				t.Errorf("asked %v, want %v", asked, tt.asked)
			}
			switch {
			case len(tt.asked) == 0 && err != nil:
				t.Errorf("refused: %v", err)
			case len(tt.asked) > 0 && (err == nil || !strings.Contains(err.Error(), tt.asked[0])):
				t.Errorf("err = %v, want it to name %s", err, tt.asked[0])
			}
		})
	}
}
