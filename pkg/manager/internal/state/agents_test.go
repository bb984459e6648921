package state

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubectl-tele/kubectl-tele/internal/testcert"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

func pod(name string, ls map[string]string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: ls}}
}

var (
	echoLabels = map[string]string{"app": "echo"}
	echoPods   = PodSet{Selector: labels.SelectorFromSet(echoLabels)}
)

// attached is a table holding ics as attached nftables intercepts of the
// pods labelled app=echo, each added with a fresh id.
func attached(t *testing.T, ics ...*Intercept) *Table {
	t.Helper()
	tb := NewTable(counter())
	for _, ic := range ics {
		ic.Pods, ic.Mech = echoPods, mechNftables
		if _, err := tb.Add(ic); err != nil {
			t.Fatal(err)
		}
	}
	return tb
}

func routeIDs(rs []*teleproto.AgentRoute) string {
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.GetIntercept())
	}
	return strings.Join(ids, " ")
}

// TestRoutesForPods: which routes each pod's agent gets, by id: the
// intercepts whose pods (a workload's selector, or one pod by name) it is
// in, attached and not being removed. A new pod
// of an intercepted workload gets, once its agent connects, the same as
// its siblings.
func TestRoutesForPods(t *testing.T) {
	at := func(id string, ps PodSet, mech teleproto.Mechanism, ic *Intercept) *Intercept {
		ic.ID, ic.Pods, ic.Mech = id, ps, mech
		return ic
	}
	secure := testIntercept(t, carol, "secure", "echo", 8443)
	secure.TLS = &teleproto.TLSCertificate{Secret: "echo-tls"}
	tb := tableOf(
		at("a-header", echoPods, mechNftables, testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")),
		at("b-pod", PodSet{Name: "echo-2"}, mechNftables, testIntercept(t, bob, "solo", "echo", 9090)),
		at("c-path", echoPods, mechService, testIntercept(t, carol, "api", "echo", 8080, ":path^=/api/")),
		at("d-tap", echoPods, mechNftables, testWiretap(t, bob, "tap", "echo", 8080)),
		at("e-tls", echoPods, mechNftables, secure),
		at("f-removing", echoPods, mechNftables, removing(testIntercept(t, alice, "old", "echo", 7000))),
		at("g-unattached", echoPods, mechNone, testIntercept(t, alice, "new", "echo", 7001)),
		at("h-other", PodSet{Selector: labels.SelectorFromSet(labels.Set{"app": "other"})}, mechNftables, testIntercept(t, alice, "other", "other", 80)),
		at("i-no-pods", PodSet{}, mechNftables, testIntercept(t, alice, "none", "echo", 7002)),
	)
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"a pod of the workload, current agent", pod("echo-1", echoLabels), "a-header c-path d-tap e-tls"},
		{"the pod intercepted by name too", pod("echo-2", echoLabels), "a-header b-pod c-path d-tap e-tls"},
		{"a new pod of the workload", pod("echo-7f9c-new", echoLabels), "a-header c-path d-tap e-tls"},
		{"the named pod, other labels", pod("echo-2", map[string]string{"app": "web"}), "b-pod"},
		{"a pod of another workload", pod("other-1", map[string]string{"app": "other"}), "h-other"},
		{"a pod no intercept selects", pod("web-1", map[string]string{"app": "web"}), ""},
		{"a pod without labels", pod("bare", nil), ""},
	} {
		if got := routeIDs(tb.RoutesFor(tc.pod)); got != tc.want {
			t.Errorf("%s: routes %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestMechFor: what a pod without an agent gets: the mechanism of the
// first attached intercept (by id) that selects it, none when no attached
// intercept does (CreateIntercept attaches its first pods itself).
func TestMechFor(t *testing.T) {
	at := func(id string, ps PodSet, mech teleproto.Mechanism, ic *Intercept) *Intercept {
		ic.ID, ic.Pods, ic.Mech = id, ps, mech
		return ic
	}
	sel := func(app string) PodSet { return PodSet{Selector: labels.SelectorFromSet(labels.Set{"app": app})} }
	tb := tableOf(
		at("a", sel("echo"), mechService, testIntercept(t, alice, "echo", "echo", 8080)),
		at("b", PodSet{Name: "solo"}, mechNftables, testIntercept(t, alice, "solo", "solo", 8080)),
		at("c", sel("web"), mechNftables, removing(testIntercept(t, alice, "web", "web", 8080))),
		at("d", sel("db"), mechNone, testIntercept(t, alice, "db", "db", 5432)),
		at("e", sel("db"), mechNftables, removing(testIntercept(t, bob, "db", "db", 5432))),
	)
	for _, tc := range []struct {
		name string
		pod  *corev1.Pod
		want teleproto.Mechanism
	}{
		{"new pod of a workload intercepted with the Service mechanism", pod("echo-new", echoLabels), mechService},
		{"the pod intercepted by name", pod("solo", nil), mechNftables},
		{"selected twice: the first intercept's", pod("solo", echoLabels), mechService},
		{"its intercept is being removed", pod("web-new", map[string]string{"app": "web"}), mechNone},
		{"its intercept is not attached yet, the other is removed", pod("db-new", map[string]string{"app": "db"}), mechNone},
		{"no intercept selects it", pod("other", map[string]string{"app": "other"}), mechNone},
	} {
		if got := tb.MechFor(tc.pod); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := NewTable(counter()).MechFor(pod("echo-1", echoLabels)); got != mechNone {
		t.Errorf("no intercepts: %v", got)
	}
}

// TestRoutesByID: two developers' echo intercepts reach the agents as two
// routes, each keyed by its intercept's id, so each routes to its laptop.
func TestRoutesByID(t *testing.T) {
	tb := attached(t,
		testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"),
		testIntercept(t, bob, "echo", "echo", 8080, "x-dev=bob"))
	routes := tb.RoutesFor(pod("echo-1", echoLabels))
	if len(routes) != 2 {
		t.Fatalf("%d routes, want 2: %v", len(routes), routes)
	}
	for _, r := range routes {
		ic := tb.Get(r.GetIntercept())
		if ic == nil || strings.Join(r.GetHttpMatch(), ",") != strings.Join(ic.PB.HttpMatch, ",") {
			t.Errorf("route %s %v is not an intercept's id and match", r.GetIntercept(), r.GetHttpMatch())
		}
	}
	if routes[0].GetIntercept() == routes[1].GetIntercept() {
		t.Errorf("both routes have id %s", routes[0].GetIntercept())
	}
}

// TestRoutesMechanism: every route carries its mechanism, its agent port,
// and the reset of idle connections, with nftables only.
func TestRoutesMechanism(t *testing.T) {
	for _, tc := range []struct {
		mech      teleproto.Mechanism
		resetIdle bool
	}{
		{mechNftables, true},
		{mechService, false},
	} {
		ic := testIntercept(t, alice, "echo", "echo", 8080)
		ic.ResetIdle = true
		tb := attached(t, ic)
		ic.Mech = tc.mech
		routes := tb.RoutesFor(pod("echo-1", echoLabels))
		if len(routes) != 1 {
			t.Fatalf("%v: %d routes, want 1", tc.mech, len(routes))
		}
		r := routes[0]
		if r.GetMech() != tc.mech || r.GetResetIdleConnections() != tc.resetIdle {
			t.Errorf("%v: route mech %v, reset idle %v; want %v, %v", tc.mech, r.GetMech(), r.GetResetIdleConnections(), tc.mech, tc.resetIdle)
		}
		if r.GetPort() != 8080 || r.GetAgentPort() != teleproto.AgentListenPort(8080) || r.GetAgentPort() != 48080 {
			t.Errorf("%v: port %d, agent port %d; want 8080, 48080", tc.mech, r.GetPort(), r.GetAgentPort())
		}
	}
	ic := testIntercept(t, alice, "echo", "echo", 8080)
	tb := attached(t, ic)
	ic.Mech = mechNone // its first pods' agents are being attached
	if routes := tb.RoutesFor(pod("echo-1", echoLabels)); len(routes) != 0 {
		t.Errorf("unattached intercept: routes %v, want none", routes)
	}
}

// TestWiretapRoutes: wiretap routes carry their kind; intercepts' routes
// have none (UNSPECIFIED means INTERCEPT).
func TestWiretapRoutes(t *testing.T) {
	tb := attached(t,
		testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"),
		testWiretap(t, bob, "tap", "echo", 8080, "x-dev=bob"))
	var got []string
	for _, r := range tb.RoutesFor(pod("echo-1", echoLabels)) {
		got = append(got, r.GetKind().String())
	}
	if want := "INTERCEPT_KIND_UNSPECIFIED INTERCEPT_KIND_WIRETAP"; strings.Join(got, " ") != want {
		t.Errorf("routes of kinds %v, want %v", got, want)
	}
}

// TestTLSRoutes: a route with a certificate carries it, and local_tls.
func TestTLSRoutes(t *testing.T) {
	ca := testcert.NewCA(t, "ca")
	pair := ca.Leaf(t, "echo.ns.svc")
	secure := testIntercept(t, bob, "echo", "echo", 8443, "x-dev=bob")
	secure.TLS = &teleproto.TLSCertificate{Secret: "echo-tls", CertPem: pair.CertPEM, KeyPem: pair.KeyPEM}
	secure.LocalTLS = true
	tb := attached(t, testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"), secure)
	got := tb.RoutesFor(pod("echo-1", echoLabels))
	if len(got) != 2 {
		t.Fatalf("%d routes, want 2: %v", len(got), got)
	}
	for _, r := range got {
		isTLS := r.GetPort() == 8443
		if (r.GetTls() != nil) != isTLS || r.GetLocalTls() != isTLS {
			t.Errorf("route %s port %d: tls %v local %v", r.GetIntercept(), r.GetPort(), r.GetTls() != nil, r.GetLocalTls())
		}
		if isTLS && !bytes.Equal(r.GetTls().GetKeyPem(), pair.KeyPEM) {
			t.Error("the route's key is not the intercept's")
		}
	}
}

// TestAuthz: a pod whose RBAC answer for an intercept's owner is no, or
// not known yet (a new pod the controller has not asked about), gets
// neither an agent for the intercept nor its route; Unchecked lists what
// is to be asked, and ForgetPod forgets a pod that went.
func TestAuthz(t *testing.T) {
	a := testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")
	m := testIntercept(t, bob, "echo", "echo", 8080, "x-dev=mallory")
	tb := attached(t, a, m)
	Decide(m, "echo-1", false)
	unasked := pod("echo-9-unasked", echoLabels)
	if got := routeIDs(tb.RoutesFor(pod("echo-1", echoLabels))); got != a.ID {
		t.Errorf("routes on a pod the second owner may not attach to: %q, want %q", got, a.ID)
	}
	if got := tb.RoutesFor(unasked); len(got) != 0 {
		t.Errorf("routes on a pod nobody was asked about: %v", got)
	}
	if got := tb.MechFor(unasked); got != mechNone {
		t.Errorf("a pod nobody was asked about gets an agent: %v", got)
	}
	var ids []string
	for _, ic := range tb.Unchecked(unasked) {
		ids = append(ids, ic.ID)
	}
	if want := []string{a.ID, m.ID}; !slices.Equal(ids, want) {
		t.Errorf("Unchecked = %v, want %v", ids, want)
	}
	if got := tb.Unchecked(pod("echo-1", echoLabels)); len(got) != 0 {
		t.Errorf("Unchecked on an answered pod: %v", got)
	}
	Decide(m, unasked.Name, false)
	Decide(a, unasked.Name, true)
	if got := routeIDs(tb.RoutesFor(unasked)); got != a.ID {
		t.Errorf("after the answers: %q, want %q", got, a.ID)
	}
	if got := tb.MechFor(unasked); got != mechNftables {
		t.Errorf("after the answers the pod gets %v", got)
	}
	tb.ForgetPod(unasked.Name)
	if got := len(tb.Unchecked(unasked)); got != 2 {
		t.Errorf("a forgotten pod has %d intercepts to ask about, want 2", got)
	}
}
