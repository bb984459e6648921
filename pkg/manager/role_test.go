package manager

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	authv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-tele/kubectl-tele/pkg/objects"
)

// recorded holds every fake clientset the package's tests make, so that
// TestMain can compare the API calls the code made with what Role grants.
var recorded struct {
	mu      sync.Mutex
	clients []*fake.Clientset
}

// newFakeClientset is fake.NewClientset, recorded. Every test of the
// package makes its clients with it.
func newFakeClientset(objs ...runtime.Object) *fake.Clientset {
	c := fake.NewClientset(objs...)
	// RBAC, as the tests have it: mallory may do nothing, everyone else
	// anything.
	c.PrependReactor("create", "localsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		r := a.(k8stesting.CreateAction).GetObject().(*authv1.LocalSubjectAccessReview).DeepCopy()
		r.Status.Allowed = r.Spec.User != "mallory"
		return true, r, nil
	})
	recorded.mu.Lock()
	recorded.clients = append(recorded.clients, c)
	recorded.mu.Unlock()
	return c
}

// notGranted are calls the manager makes that a namespaced Role cannot
// grant (cluster-scoped resources): it tries them for a better answer and
// falls back when refused (see Role's doc and internal/discovery).
var notGranted = map[string]bool{
	"list nodes":                          true,
	"list networking.k8s.io/servicecidrs": true,
	// kube-system/extension-apiserver-authentication, the API server's
	// client CA: read where an admin let the manager (k3s), else refused.
	"get configmaps": true,
}

// TestMain runs the tests, and then, when all of them ran and passed,
// checks least privilege: the Role grants every (verb, resource) the code
// called in them, and nothing else. A grant no test exercises is refused
// too: either the code does not need it, or a test is missing.
func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if code == 0 && flag.Lookup("test.run").Value.String() == "" && flag.Lookup("test.skip").Value.String() == "" {
		if msg := checkRole(); msg != "" {
			fmt.Fprintln(os.Stderr, "--- FAIL: least privilege\n"+msg)
			code = 1
		}
	}
	os.Exit(code)
}

// checkRole compares the recorded calls with Role and says what differs.
func checkRole() string {
	used := map[string]bool{}
	names := map[string]map[string]bool{} // get secrets -> names read
	recorded.mu.Lock()
	for _, c := range recorded.clients {
		for _, a := range c.Actions() {
			k := grantKey(a.GetVerb(), a.GetResource().Group, a.GetResource().Resource, a.GetSubresource())
			used[k] = true
			if g, ok := a.(k8stesting.GetAction); ok && a.GetResource().Resource == "secrets" {
				if names[k] == nil {
					names[k] = map[string]bool{}
				}
				names[k][g.GetName()] = true
			}
		}
	}
	recorded.mu.Unlock()
	granted := map[string][]string{} // key -> resourceNames (nil: all)
	for _, r := range objects.Role(testNS, "kubectl-tele-manager").Rules {
		for _, g := range r.APIGroups {
			for _, res := range r.Resources {
				for _, v := range r.Verbs {
					res, sub, _ := strings.Cut(res, "/")
					granted[grantKey(v, g, res, sub)] = r.ResourceNames
				}
			}
		}
	}
	var problems []string
	for k := range used {
		rn, ok := granted[k]
		switch {
		case !ok && !notGranted[k]:
			problems = append(problems, "called but not granted by Role: "+k)
		case ok && len(rn) > 0:
			for n := range names[k] {
				if !slices.Contains(rn, n) {
					problems = append(problems, fmt.Sprintf("called on %q, but Role grants %s only on %v", n, k, rn))
				}
			}
		}
	}
	for k := range granted {
		if !used[k] {
			problems = append(problems, "granted by Role but called by no test: "+k)
		}
	}
	sort.Strings(problems)
	return strings.Join(problems, "\n")
}

func grantKey(verb, group, resource, sub string) string {
	r := resource
	if group != "" {
		r = group + "/" + resource
	}
	if sub != "" {
		r += "/" + sub
	}
	return verb + " " + r
}

// TestRoleSecrets: only the agents' token and CA are readable, by name;
// nothing is deleted.
func TestRoleSecrets(t *testing.T) {
	r := objects.Role(testNS, "kubectl-tele-manager")
	if r.Namespace != testNS || r.Name != "kubectl-tele-manager" {
		t.Errorf("Role meta = %v", r.ObjectMeta)
	}
	for _, rule := range r.Rules {
		for _, res := range rule.Resources {
			if res == "secrets" && slices.Contains(rule.Verbs, "get") && !slices.Equal(rule.ResourceNames, []string{objects.AgentSecret, objects.AgentCASecret}) {
				t.Errorf("Role reads secrets other than %s and %s: %+v", objects.AgentSecret, objects.AgentCASecret, rule)
			}
			if slices.Contains(rule.Verbs, "delete") || slices.Contains(rule.Verbs, "*") || res == "*" {
				t.Errorf("Role grants %v on %s", rule.Verbs, res)
			}
		}
	}
}
