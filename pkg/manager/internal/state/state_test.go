package state

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubectl-tele/kubectl-tele/internal/testcert"
	"github.com/kubectl-tele/kubectl-tele/pkg/agent/match"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// dev is a developer's session, as the table knows it.
type dev struct{ session, owner string }

var (
	alice = dev{"session-a", "alice@a-laptop"}
	bob   = dev{"session-b", "bob@b-laptop"}
	carol = dev{"session-c", "carol@c-laptop"}
)

// testIntercept is d's intercept name of deployment/workload's port, with
// the header match terms (none: global), not attached (no pods, no
// mechanism).
func testIntercept(t *testing.T, d dev, name, workload string, port uint32, terms ...string) *Intercept {
	t.Helper()
	m, err := match.Parse(terms)
	if err != nil {
		t.Fatal(err)
	}
	return &Intercept{
		ID: name + "/" + d.owner + "/test",
		PB: &teleproto.Intercept{
			Name: name, WorkloadKind: "Deployment", WorkloadName: workload,
			Port: port, LocalPort: 7070, HttpMatch: terms, Owner: d.owner,
		},
		Session: d.session, Match: m,
	}
}

// counter is a random source that counts: ids the tests can predict.
func counter() func() string {
	n := 0
	return func() string { n++; return fmt.Sprintf("%08d", n) }
}

// tableOf is a table holding ics under their ids, as they are (no
// conflict check).
func tableOf(ics ...*Intercept) *Table {
	t := NewTable(counter())
	for _, ic := range ics {
		t.ics[ic.ID] = ic
	}
	return t
}

// attached is a table holding ics as attached nftables intercepts of the
// pods labelled app=echo, each added with a fresh id.
func attached(t *testing.T, ics ...*Intercept) *Table {
	t.Helper()
	tb := NewTable(counter())
	sel := PodSet{Selector: labels.SelectorFromSet(labels.Set{"app": "echo"})}
	for _, ic := range ics {
		ic.Pods, ic.Mech = sel, mechNftables
		if _, err := tb.Add(ic); err != nil {
			t.Fatal(err)
		}
	}
	return tb
}

// TestConflict: names are per session, so two developers' default
// intercepts of one workload coexist; what would take another's traffic is
// refused, naming its owner.
func TestConflict(t *testing.T) {
	removing := func(ic *Intercept) *Intercept { ic.Removing = true; return ic }
	for _, tc := range []struct {
		name     string
		existing []*Intercept
		ic       *Intercept
		code     codes.Code // codes.OK: allowed
		says     []string
	}{
		{name: "first intercept",
			ic: testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
		{name: "another developer's default name, another match",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, "x-dev=bob")},
		{name: "another developer's name on another workload",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "other", 8080)},
		{name: "own name again",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, alice, "echo", "echo", 8080, "x-dev=carol"),
			code:     codes.AlreadyExists, says: []string{"you already have an intercept named echo", "--name"}},
		{name: "own name again on another workload",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, alice, "echo", "other", 80),
			code:     codes.AlreadyExists, says: []string{"you already have an intercept named echo (of deployment/echo)"}},
		{name: "own name being removed",
			existing: []*Intercept{removing(testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"))},
			ic:       testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"),
			code:     codes.Unavailable, says: []string{"being removed"}},
		{name: "another developer's name being removed",
			existing: []*Intercept{removing(testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"))},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, "x-dev=alice")},
		{name: "own other name, another match",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, alice, "echo-2", "echo", 8080, "x-dev=alice2")},
		{name: "same match by another developer",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, "x-dev=alice"),
			code:     codes.AlreadyExists, says: []string{"match x-dev=alice is already intercepted by alice@a-laptop (intercept echo)"}},
		{name: "same match under another name",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "mine", "echo", 8080, "x-dev=alice"),
			code:     codes.AlreadyExists, says: []string{"already intercepted by alice@a-laptop"}},
		{name: "same match on another port",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 9090, "x-dev=alice")},
		{name: "same match on another workload",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "web", "web", 8080, "x-dev=alice")},
		{name: "same path and method filter, other order",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, ":path^=/api/", ":method=POST")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, ":method=POST", ":path^=/api/"),
			code:     codes.AlreadyExists, says: []string{"match :method=POST :path^=/api/ is already intercepted by alice@a-laptop"}},
		{name: "another path filter",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, ":path^=/api/")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, ":path=/api/")},
		{name: "a path filter beside a header one",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, ":method=POST")},
		{name: "global over a path filter",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, ":path=/x")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080),
			code:     codes.AlreadyExists, says: []string{"already has filtered intercepts", "--http-path"}},
		{name: "global over header intercepts",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080),
			code:     codes.AlreadyExists, says: []string{"already has filtered intercepts (echo by alice@a-laptop)", "--http-match"}},
		{name: "header under a global intercept",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080)},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, "x-dev=bob"),
			code:     codes.AlreadyExists, says: []string{"intercepted as a whole by alice@a-laptop (intercept echo)"}},
		{name: "second global intercept",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080)},
			ic:       testIntercept(t, bob, "echo", "echo", 8080),
			code:     codes.AlreadyExists, says: []string{"intercepted as a whole by alice@a-laptop"}},
		{name: "global over a global being removed",
			existing: []*Intercept{removing(testIntercept(t, alice, "echo", "echo", 8080))},
			ic:       testIntercept(t, bob, "echo", "echo", 8080)},
		{name: "own header under own global intercept",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080)},
			ic:       testIntercept(t, alice, "echo-h", "echo", 8080, "x-dev=alice"),
			code:     codes.AlreadyExists, says: []string{"intercepted as a whole by alice@a-laptop"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tableOf(tc.existing...).conflict(tc.ic)
			if got := status.Code(err); got != tc.code {
				t.Fatalf("code %v (%v), want %v", got, err, tc.code)
			}
			for _, s := range tc.says {
				if !strings.Contains(status.Convert(err).Message(), s) {
					t.Errorf("message %q does not say %q", status.Convert(err).Message(), s)
				}
			}
		})
	}
}

// TestOwnIntercept: leave acts on the caller's intercept of that name only;
// another's is refused naming its owner.
func TestOwnIntercept(t *testing.T) {
	aliceEcho := testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")
	bobEcho := testIntercept(t, bob, "echo", "echo", 8080, "x-dev=bob")
	bobWeb := testIntercept(t, bob, "web", "web", 80)
	tb := tableOf(aliceEcho, bobEcho, bobWeb)
	for _, tc := range []struct {
		ss   dev
		name string
		want *Intercept
		code codes.Code
		says string
	}{
		{ss: alice, name: "echo", want: aliceEcho},
		{ss: bob, name: "echo", want: bobEcho},
		{ss: bob, name: "web", want: bobWeb},
		{ss: alice, name: "web", code: codes.PermissionDenied, says: "intercept web is not yours: it belongs to bob@b-laptop"},
		{ss: carol, name: "echo", code: codes.PermissionDenied, says: "belongs to alice@a-laptop, bob@b-laptop"},
		{ss: alice, name: "nope", code: codes.NotFound, says: "you have no intercept named nope"},
	} {
		got, err := tb.Own(tc.ss.session, tc.name)
		if status.Code(err) != tc.code || got != tc.want {
			t.Errorf("%s leaves %s: %v, %v; want %v, %v", tc.ss.owner, tc.name, got, err, tc.want, tc.code)
			continue
		}
		if tc.says != "" && !strings.Contains(status.Convert(err).Message(), tc.says) {
			t.Errorf("%s leaves %s: message %q does not say %q", tc.ss.owner, tc.name, status.Convert(err).Message(), tc.says)
		}
	}
}

func TestNewInterceptID(t *testing.T) {
	tb := NewTable(counter())
	for range 100 {
		id := tb.newID("echo", "alice@a-laptop")
		if !strings.HasPrefix(id, "echo/alice@a-laptop/") {
			t.Fatalf("id %q does not start with name/owner/", id)
		}
		if tb.Get(id) != nil {
			t.Fatalf("id %q given twice", id)
		}
		tb.ics[id] = &Intercept{}
	}
}

// TestRoutesByID: two developers' echo intercepts reach the agents as two
// routes, each keyed by its intercept's id, so each routes to its laptop.
func TestRoutesByID(t *testing.T) {
	tb := attached(t,
		testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"),
		testIntercept(t, bob, "echo", "echo", 8080, "x-dev=bob"))
	routes := tb.RoutesFor(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "echo-1", Labels: map[string]string{"app": "echo"}}}, &teleproto.AgentHello{})
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

// TestOlderAgentRoutes: an agent whose hello lacks the request-line feature
// (an older image, still in its pod) is sent only the routes it can apply:
// a path filter would make it refuse every route.
func TestOlderAgentRoutes(t *testing.T) {
	tb := attached(t,
		testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"),
		testIntercept(t, bob, "echo", "echo", 8080, ":path^=/api/"))
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "echo-1", Labels: map[string]string{"app": "echo"}}}
	for _, tc := range []struct {
		hello *teleproto.AgentHello
		want  int
	}{
		{&teleproto.AgentHello{}, 1},
		{&teleproto.AgentHello{Features: []teleproto.AgentFeature{teleproto.AgentFeature_AGENT_FEATURE_REQUEST_LINE_MATCH}}, 2},
	} {
		if got := tb.RoutesFor(pod, tc.hello); len(got) != tc.want {
			t.Errorf("features %v: %d routes, want %d: %v", tc.hello.GetFeatures(), len(got), tc.want, got)
		}
	}
}

// TestPodSetOf: the manager takes the pods as the laptop resolved them: a
// workload's selector selects its pods, a bare pod is itself alone (not its
// siblings with the same labels); a target that names no pods, or would
// name every pod, is refused, and a request without one (a laptop that
// predates targets) is told apart.
func TestPodSetOf(t *testing.T) {
	echo := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "echo-1", Labels: map[string]string{"app": "echo", "tier": "web"}}}
	solo := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "solo", Labels: map[string]string{"app": "echo"}}}
	other := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "other", Labels: map[string]string{"app": "other"}}}
	selector := func(ls *teleproto.LabelSelector) *teleproto.InterceptTarget {
		return &teleproto.InterceptTarget{Pods: &teleproto.InterceptTarget_Selector{Selector: ls}}
	}
	expr := func(key string, op teleproto.SelectorOperator, values ...string) *teleproto.LabelSelectorRequirement {
		return &teleproto.LabelSelectorRequirement{Key: key, Operator: op, Values: values}
	}
	for _, tc := range []struct {
		name              string
		target            *teleproto.InterceptTarget
		echo, solo, other bool
		err               string // "" ok; ErrNoTarget's text for none
	}{
		{"match labels", echoTarget, true, true, false, ""},
		{"match expressions", selector(&teleproto.LabelSelector{MatchExpressions: []*teleproto.LabelSelectorRequirement{
			expr("app", teleproto.SelectorOperator_SELECTOR_OPERATOR_IN, "echo", "x"),
			expr("tier", teleproto.SelectorOperator_SELECTOR_OPERATOR_EXISTS)}}), true, false, false, ""},
		{"not in and does not exist", selector(&teleproto.LabelSelector{MatchExpressions: []*teleproto.LabelSelectorRequirement{
			expr("app", teleproto.SelectorOperator_SELECTOR_OPERATOR_NOT_IN, "other"),
			expr("tier", teleproto.SelectorOperator_SELECTOR_OPERATOR_DOES_NOT_EXIST)}}), false, true, false, ""},
		{"a bare pod", &teleproto.InterceptTarget{Pods: &teleproto.InterceptTarget_PodName{PodName: "solo"}}, false, true, false, ""},
		{"no target", nil, false, false, false, ErrNoTarget.Error()},
		{"no pods", &teleproto.InterceptTarget{}, false, false, false, "names no pods"},
		{"empty pod name", &teleproto.InterceptTarget{Pods: &teleproto.InterceptTarget_PodName{}}, false, false, false, "empty pod name"},
		{"empty selector", selector(&teleproto.LabelSelector{}), false, false, false, "every pod"},
		{"unknown operator", selector(&teleproto.LabelSelector{MatchExpressions: []*teleproto.LabelSelectorRequirement{expr("app", 9, "echo")}}), false, false, false, "operator"},
		{"In without values", selector(&teleproto.LabelSelector{MatchExpressions: []*teleproto.LabelSelectorRequirement{
			expr("app", teleproto.SelectorOperator_SELECTOR_OPERATOR_IN)}}), false, false, false, "values"},
		{"bad label key", selector(&teleproto.LabelSelector{MatchLabels: map[string]string{"a b": "c"}}), false, false, false, "name part"},
	} {
		got, err := PodSetOf(tc.target)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got.Has(echo) != tc.echo || got.Has(solo) != tc.solo || got.Has(other) != tc.other {
			t.Errorf("%s (%s): has echo-1 %v, solo %v, other %v; want %v, %v, %v", tc.name, got,
				got.Has(echo), got.Has(solo), got.Has(other), tc.echo, tc.solo, tc.other)
		}
	}
}

// TestRoutesMechanism: every route carries its mechanism in the enum and,
// for agents of older images (which read only the word, and stay in their
// pods for the pods' life), in the legacy word they compare with.
func TestRoutesMechanism(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "echo-1", Labels: map[string]string{"app": "echo"}}}
	for _, tc := range []struct {
		mech      teleproto.Mechanism
		oldWord   string // what an older agent compares GetMechanism with
		resetIdle bool
	}{
		{mechNftables, `nftables`, true},
		{mechService, `service`, false},
	} {
		ic := testIntercept(t, alice, "echo", "echo", 8080)
		ic.ResetIdle = true
		tb := attached(t, ic)
		ic.Mech = tc.mech
		routes := tb.RoutesFor(pod, &teleproto.AgentHello{})
		if len(routes) != 1 {
			t.Fatalf("%v: %d routes, want 1", tc.mech, len(routes))
		}
		r := routes[0]
		if r.GetMech() != tc.mech || r.GetMechanism() != tc.oldWord || r.GetResetIdleConnections() != tc.resetIdle {
			t.Errorf("%v: route mech %v, word %q, reset idle %v; want %v, %q, %v", tc.mech, r.GetMech(), r.GetMechanism(), r.GetResetIdleConnections(), tc.mech, tc.oldWord, tc.resetIdle)
		}
	}
	ic := testIntercept(t, alice, "echo", "echo", 8080)
	tb := attached(t, ic)
	ic.Mech = mechNone // its first pods' agents are being attached
	if routes := tb.RoutesFor(pod, &teleproto.AgentHello{}); len(routes) != 0 {
		t.Errorf("unattached intercept: routes %v, want none", routes)
	}
}

// TestAgentRefusal: which agents CreateIntercept refuses a pod for, rather
// than leave it to the app (or, for a wiretap with the Service mechanism,
// refusing every client).
func TestAgentRefusal(t *testing.T) {
	var (
		old    = &teleproto.AgentHello{}
		filter = &teleproto.AgentHello{Features: []teleproto.AgentFeature{teleproto.AgentFeature_AGENT_FEATURE_REQUEST_LINE_MATCH}}
		all    = &teleproto.AgentHello{Features: []teleproto.AgentFeature{teleproto.AgentFeature_AGENT_FEATURE_REQUEST_LINE_MATCH, teleproto.AgentFeature_AGENT_FEATURE_TLS, teleproto.AgentFeature_AGENT_FEATURE_WIRETAP}}
	)
	header := testIntercept(t, alice, "h", "echo", 8080, "x-dev=alice")
	path := testIntercept(t, alice, "p", "echo", 8080, ":path^=/api/")
	tap := testIntercept(t, alice, "t", "echo", 8080, ":path^=/api/")
	tap.PB.Kind = teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP
	secure := testIntercept(t, alice, "s", "echo", 8443, "x-dev=alice")
	secure.TLS = &teleproto.TLSCertificate{Secret: "echo-tls"}
	for _, tc := range []struct {
		name  string
		hello *teleproto.AgentHello
		ic    *Intercept
		mech  teleproto.Mechanism
		want  string // "" : taken
	}{
		{"header match, oldest agent", old, header, mechNftables, ""},
		{"path filter, oldest agent", old, path, mechNftables, "predates path and method filters"},
		{"path filter, current agent", filter, path, mechNftables, ""},
		{"wiretap, old agent, nftables: its pod is uncovered", filter, tap, mechNftables, ""},
		{"wiretap, old agent, Service mechanism", filter, tap, mechService, "predates wiretaps"},
		{"wiretap, current agent, Service mechanism", all, tap, mechService, ""},
		{"tls, agent without it", filter, secure, mechNftables, "predates TLS"},
		{"tls, current agent", all, secure, mechService, ""},
	} {
		err := AgentRefusal(tc.hello, tc.ic, tc.mech)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func testWiretap(t *testing.T, ss dev, name, workload string, port uint32, terms ...string) *Intercept {
	t.Helper()
	ic := testIntercept(t, ss, name, workload, port, terms...)
	ic.PB.Kind = teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP
	return ic
}

// TestWiretapConflict: wiretaps take nothing, so they never conflict with
// one another or with intercepts, global or not; names stay per session,
// and intercepts still conflict among themselves beside a wiretap.
func TestWiretapConflict(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing []*Intercept
		ic       *Intercept
		code     codes.Code
		says     string
	}{
		{name: "wiretap beside a header intercept",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testWiretap(t, bob, "echo", "echo", 8080, "x-dev=alice")},
		{name: "wiretap under a global intercept",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080)},
			ic:       testWiretap(t, bob, "echo", "echo", 8080)},
		{name: "global wiretap over header intercepts",
			existing: []*Intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testWiretap(t, bob, "tap", "echo", 8080)},
		{name: "a second identical wiretap",
			existing: []*Intercept{testWiretap(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testWiretap(t, bob, "echo", "echo", 8080, "x-dev=alice")},
		{name: "own second wiretap under another name",
			existing: []*Intercept{testWiretap(t, alice, "echo", "echo", 8080)},
			ic:       testWiretap(t, alice, "echo-2", "echo", 8080)},
		{name: "global intercept over a wiretap",
			existing: []*Intercept{testWiretap(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080)},
		{name: "intercept with a wiretap's match",
			existing: []*Intercept{testWiretap(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, "x-dev=alice")},
		{name: "own name again",
			existing: []*Intercept{testWiretap(t, alice, "echo", "echo", 8080)},
			ic:       testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"),
			code:     codes.AlreadyExists, says: "you already have an intercept named echo"},
		{name: "intercepts still conflict beside a wiretap",
			existing: []*Intercept{testWiretap(t, alice, "tap", "echo", 8080), testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, "x-dev=alice"),
			code:     codes.AlreadyExists, says: "already intercepted by alice@a-laptop (intercept echo)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tableOf(tc.existing...).conflict(tc.ic)
			if got := status.Code(err); got != tc.code {
				t.Fatalf("code %v (%v), want %v", got, err, tc.code)
			}
			if !strings.Contains(status.Convert(err).Message(), tc.says) {
				t.Errorf("message %q does not say %q", status.Convert(err).Message(), tc.says)
			}
		})
	}
}

// TestWiretapRoutes: wiretap routes carry their kind and go only to agents
// that said they apply them; intercepts' routes stay as before (no kind),
// so older agents read them as they always did.
func TestWiretapRoutes(t *testing.T) {
	tb := attached(t,
		testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"),
		testWiretap(t, bob, "tap", "echo", 8080, "x-dev=bob"))
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "echo-1", Labels: map[string]string{"app": "echo"}}}
	for _, tc := range []struct {
		features []teleproto.AgentFeature
		want     []string // kinds of the routes
	}{
		{nil, []string{"INTERCEPT_KIND_UNSPECIFIED"}},
		{[]teleproto.AgentFeature{teleproto.AgentFeature_AGENT_FEATURE_REQUEST_LINE_MATCH}, []string{"INTERCEPT_KIND_UNSPECIFIED"}},
		{[]teleproto.AgentFeature{teleproto.AgentFeature_AGENT_FEATURE_REQUEST_LINE_MATCH, teleproto.AgentFeature_AGENT_FEATURE_WIRETAP},
			[]string{"INTERCEPT_KIND_UNSPECIFIED", "INTERCEPT_KIND_WIRETAP"}},
	} {
		var got []string
		for _, r := range tb.RoutesFor(pod, &teleproto.AgentHello{Features: tc.features}) {
			got = append(got, r.GetKind().String())
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("features %v: routes of kinds %v, want %v", tc.features, got, tc.want)
		}
	}
}

// TestTLSRouteGating: a route with a certificate goes only to agents that
// advertise AGENT_FEATURE_TLS, with its certificate; an older agent gets
// the others (its pod is uncovered by the TLS intercept).
func TestTLSRouteGating(t *testing.T) {
	ca := testcert.NewCA(t, "ca")
	pair := ca.Leaf(t, "echo.ns.svc")
	secure := testIntercept(t, bob, "echo", "echo", 8443, "x-dev=bob")
	secure.TLS = &teleproto.TLSCertificate{Secret: "echo-tls", CertPem: pair.CertPEM, KeyPem: pair.KeyPEM}
	secure.LocalTLS = true
	tb := attached(t, testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"), secure)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "echo-1", Labels: map[string]string{"app": "echo"}}}
	all := []teleproto.AgentFeature{teleproto.AgentFeature_AGENT_FEATURE_REQUEST_LINE_MATCH, teleproto.AgentFeature_AGENT_FEATURE_TLS}
	for _, tc := range []struct {
		name     string
		features []teleproto.AgentFeature
		want     int
	}{
		{"no features", nil, 1},
		{"request line only", all[:1], 1},
		{"tls", all, 2},
	} {
		got := tb.RoutesFor(pod, &teleproto.AgentHello{Features: tc.features})
		if len(got) != tc.want {
			t.Errorf("%s: %d routes, want %d: %v", tc.name, len(got), tc.want, got)
			continue
		}
		for _, r := range got {
			isTLS := r.GetPort() == 8443
			if (r.GetTls() != nil) != isTLS || r.GetLocalTls() != isTLS {
				t.Errorf("%s: route %s port %d: tls %v local %v", tc.name, r.GetIntercept(), r.GetPort(), r.GetTls() != nil, r.GetLocalTls())
			}
			if isTLS && !bytes.Equal(r.GetTls().GetKeyPem(), pair.KeyPEM) {
				t.Errorf("%s: the route's key is not the intercept's", tc.name)
			}
		}
	}
}

// TestTLSNeverShown: what list prints (an Intercept, as JSON or YAML) has
// the Secret's name and no key material. (Requests, which carry the key, are
// never logged: protobuf-go's String ignores debug_redact.)
func TestTLSNeverShown(t *testing.T) {
	pair := testcert.NewCA(t, "ca").Leaf(t, "echo.ns.svc")
	ic := testIntercept(t, bob, "echo", "echo", 8443, "x-dev=bob")
	ic.TLS = &teleproto.TLSCertificate{Secret: "echo-tls", CertPem: pair.CertPEM, KeyPem: pair.KeyPEM}
	ic.PB.TlsSecret = "echo-tls"
	out, err := protojson.Marshal(ic.Clone(""))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"tlsSecret":"echo-tls"`) || strings.Contains(string(out), "PRIVATE") || strings.Contains(string(out), "Pem") {
		t.Errorf("list's intercept: %s", out)
	}
}

// echoTarget is deploy/echo as the laptop resolves it.
var echoTarget = &teleproto.InterceptTarget{Pods: &teleproto.InterceptTarget_Selector{
	Selector: &teleproto.LabelSelector{MatchLabels: map[string]string{"app": "echo"}}}}
