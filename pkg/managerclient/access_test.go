package managerclient

import (
	"context"
	"strings"
	"testing"

	authv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-tele/kubectl-tele/pkg/manager"
)

// TestStartAccess: starting a manager checks, besides creating its
// objects, every permission its Role grants (a user may create a Role only
// with permissions they hold), by name where the Role names the object, so
// that a user whose Role predates a grant is told which one is missing, all
// at once, before anything is created.
func TestStartAccess(t *testing.T) {
	role := manager.Role("ns", Name)
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
		"get secrets " + manager.AgentSecret: true,
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
