package manager

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubectl-tele/kubectl-tele/pkg/agent/match"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

var (
	alice = &session{id: "session-a", user: "alice", hostname: "a-laptop"}
	bob   = &session{id: "session-b", user: "bob", hostname: "b-laptop"}
)

// testIntercept is ss's intercept name of deployment/workload's port, with
// the header match terms (none: global).
func testIntercept(t *testing.T, ss *session, name, workload string, port uint32, terms ...string) *intercept {
	t.Helper()
	m, err := match.Parse(terms)
	if err != nil {
		t.Fatal(err)
	}
	owner := ss.user + "@" + ss.hostname
	return &intercept{
		id: name + "/" + owner + "/test",
		pb: &teleproto.Intercept{
			Name: name, WorkloadKind: "Deployment", WorkloadName: workload,
			Port: port, LocalPort: 7070, HttpMatch: terms, Owner: owner,
		},
		session: ss, match: m,
	}
}

func byID(ics ...*intercept) map[string]*intercept {
	out := map[string]*intercept{}
	for _, ic := range ics {
		out[ic.id] = ic
	}
	return out
}

// TestConflict: names are per session, so two developers' default
// intercepts of one workload coexist; what would take another's traffic is
// refused, naming its owner.
func TestConflict(t *testing.T) {
	removing := func(ic *intercept) *intercept { ic.removing = true; return ic }
	for _, tc := range []struct {
		name     string
		existing []*intercept
		ic       *intercept
		code     codes.Code // codes.OK: allowed
		says     []string
	}{
		{name: "first intercept",
			ic: testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
		{name: "another developer's default name, another match",
			existing: []*intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, "x-dev=bob")},
		{name: "another developer's name on another workload",
			existing: []*intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "other", 8080)},
		{name: "own name again",
			existing: []*intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, alice, "echo", "echo", 8080, "x-dev=carol"),
			code:     codes.AlreadyExists, says: []string{"you already have an intercept named echo", "--name"}},
		{name: "own name again on another workload",
			existing: []*intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, alice, "echo", "other", 80),
			code:     codes.AlreadyExists, says: []string{"you already have an intercept named echo (of deployment/echo)"}},
		{name: "own name being removed",
			existing: []*intercept{removing(testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"))},
			ic:       testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"),
			code:     codes.Unavailable, says: []string{"being removed"}},
		{name: "another developer's name being removed",
			existing: []*intercept{removing(testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"))},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, "x-dev=alice")},
		{name: "own other name, another match",
			existing: []*intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, alice, "echo-2", "echo", 8080, "x-dev=alice2")},
		{name: "same match by another developer",
			existing: []*intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, "x-dev=alice"),
			code:     codes.AlreadyExists, says: []string{"match x-dev=alice is already intercepted by alice@a-laptop (intercept echo)"}},
		{name: "same match under another name",
			existing: []*intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "mine", "echo", 8080, "x-dev=alice"),
			code:     codes.AlreadyExists, says: []string{"already intercepted by alice@a-laptop"}},
		{name: "same match on another port",
			existing: []*intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 9090, "x-dev=alice")},
		{name: "same match on another workload",
			existing: []*intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "web", "web", 8080, "x-dev=alice")},
		{name: "same path and method filter, other order",
			existing: []*intercept{testIntercept(t, alice, "echo", "echo", 8080, ":path^=/api/", ":method=POST")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, ":method=POST", ":path^=/api/"),
			code:     codes.AlreadyExists, says: []string{"match :method=POST :path^=/api/ is already intercepted by alice@a-laptop"}},
		{name: "another path filter",
			existing: []*intercept{testIntercept(t, alice, "echo", "echo", 8080, ":path^=/api/")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, ":path=/api/")},
		{name: "a path filter beside a header one",
			existing: []*intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, ":method=POST")},
		{name: "global over a path filter",
			existing: []*intercept{testIntercept(t, alice, "echo", "echo", 8080, ":path=/x")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080),
			code:     codes.AlreadyExists, says: []string{"already has filtered intercepts", "--http-path"}},
		{name: "global over header intercepts",
			existing: []*intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080),
			code:     codes.AlreadyExists, says: []string{"already has filtered intercepts (echo by alice@a-laptop)", "--http-match"}},
		{name: "header under a global intercept",
			existing: []*intercept{testIntercept(t, alice, "echo", "echo", 8080)},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, "x-dev=bob"),
			code:     codes.AlreadyExists, says: []string{"intercepted as a whole by alice@a-laptop (intercept echo)"}},
		{name: "second global intercept",
			existing: []*intercept{testIntercept(t, alice, "echo", "echo", 8080)},
			ic:       testIntercept(t, bob, "echo", "echo", 8080),
			code:     codes.AlreadyExists, says: []string{"intercepted as a whole by alice@a-laptop"}},
		{name: "global over a global being removed",
			existing: []*intercept{removing(testIntercept(t, alice, "echo", "echo", 8080))},
			ic:       testIntercept(t, bob, "echo", "echo", 8080)},
		{name: "own header under own global intercept",
			existing: []*intercept{testIntercept(t, alice, "echo", "echo", 8080)},
			ic:       testIntercept(t, alice, "echo-h", "echo", 8080, "x-dev=alice"),
			code:     codes.AlreadyExists, says: []string{"intercepted as a whole by alice@a-laptop"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := conflict(byID(tc.existing...), tc.ic)
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
	carol := &session{id: "session-c", user: "carol", hostname: "c-laptop"}
	aliceEcho := testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")
	bobEcho := testIntercept(t, bob, "echo", "echo", 8080, "x-dev=bob")
	bobWeb := testIntercept(t, bob, "web", "web", 80)
	ics := byID(aliceEcho, bobEcho, bobWeb)
	for _, tc := range []struct {
		ss   *session
		name string
		want *intercept
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
		got, err := ownIntercept(ics, tc.ss, tc.name)
		if status.Code(err) != tc.code || got != tc.want {
			t.Errorf("%s leaves %s: %v, %v; want %v, %v", tc.ss.user, tc.name, got, err, tc.want, tc.code)
			continue
		}
		if tc.says != "" && !strings.Contains(status.Convert(err).Message(), tc.says) {
			t.Errorf("%s leaves %s: message %q does not say %q", tc.ss.user, tc.name, status.Convert(err).Message(), tc.says)
		}
	}
}

func TestNewInterceptID(t *testing.T) {
	ics := map[string]*intercept{}
	for range 100 {
		id := newInterceptID(ics, "echo", "alice@a-laptop")
		if !strings.HasPrefix(id, "echo/alice@a-laptop/") {
			t.Fatalf("id %q does not start with name/owner/", id)
		}
		if _, dup := ics[id]; dup {
			t.Fatalf("id %q given twice", id)
		}
		ics[id] = &intercept{}
	}
}

// TestTwoDevelopersOneName drives the RPCs: Bob's default-named intercept
// of the workload Alice intercepts is not refused for its name, each sees
// both in the list with their own marked, Bob cannot leave Alice's echo,
// and Bob's leave echo ends his own only.
func TestTwoDevelopersOneName(t *testing.T) {
	cfg := testConfig(t)
	cfg.Client = newFakeClientset(
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: testNS}, Status: corev1.PodStatus{PodIP: "10.244.7.3"}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: testNS},
			Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "echo"}}}})
	s, c := startServer(t, cfg)
	ctx := context.Background()
	arriveAs := func(user string) (string, *session) {
		resp, err := c.Arrive(ctx, &teleproto.ArriveRequest{
			ProtocolVersion: teleproto.ProtocolVersion_PROTOCOL_VERSION_1, ClientVersion: "test", Hostname: user + "-laptop", User: user, Namespace: testNS,
		})
		if err != nil {
			t.Fatalf("Arrive %s: %v", user, err)
		}
		ss, err := s.lookup(ctx, resp.GetSessionId())
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetSessionId(), ss
	}
	aid, as := arriveAs("alice")
	bid, bs := arriveAs("bob")
	// Alice's intercept as CreateIntercept leaves it; this test has no agents.
	aliceEcho := testIntercept(t, as, "echo", "echo", 8080, "x-dev=alice")
	s.imu.Lock()
	s.intercepts[aliceEcho.id] = aliceEcho
	s.imu.Unlock()

	create := func(id string, terms ...string) error {
		_, err := c.CreateIntercept(ctx, &teleproto.CreateInterceptRequest{
			SessionId: id, WorkloadKind: "Deployment", WorkloadName: "echo", Port: 8080, LocalPort: 7071, HttpMatch: terms,
			Target: echoTarget,
		})
		return err
	}
	noTarget, err := c.CreateIntercept(ctx, &teleproto.CreateInterceptRequest{
		SessionId: bid, WorkloadKind: "Deployment", WorkloadName: "echo", Port: 8080, LocalPort: 7071, HttpMatch: []string{"x-dev=bob"},
	})
	wantCode(t, "a laptop that predates targets", err, codes.FailedPrecondition, "predates resolving the workload on the laptop")
	if noTarget != nil {
		t.Errorf("got %v", noTarget)
	}
	// Past the name and conflict checks, the deployment has no running pod.
	wantCode(t, "Bob intercepts echo with his own match", create(bid, "x-dev=bob"), codes.FailedPrecondition, "no running pod")
	wantCode(t, "Bob intercepts echo with Alice's match", create(bid, "x-dev=alice"), codes.AlreadyExists, "already intercepted by alice@alice-laptop")
	wantCode(t, "Alice intercepts echo again", create(aid, "x-dev=alice2"), codes.AlreadyExists, "you already have an intercept named echo")

	bobEcho := testIntercept(t, bs, "echo", "echo", 8080, "x-dev=bob")
	s.imu.Lock()
	s.intercepts[bobEcho.id] = bobEcho
	s.imu.Unlock()
	for _, v := range []struct {
		who, id string
		want    []string
	}{
		{"alice", aid, []string{"echo x-dev=alice alice@alice-laptop (you)", "echo x-dev=bob bob@bob-laptop"}},
		{"bob", bid, []string{"echo x-dev=alice alice@alice-laptop", "echo x-dev=bob bob@bob-laptop (you)"}},
	} {
		list, err := c.ListIntercepts(ctx, &teleproto.SessionRequest{SessionId: v.id})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ic := range list.GetIntercepts() {
			row := ic.GetName() + " " + strings.Join(ic.GetHttpMatch(), ",") + " " + ic.GetOwner()
			if ic.GetMine() {
				row += " (you)"
			}
			got = append(got, row)
		}
		if strings.Join(got, "\n") != strings.Join(v.want, "\n") {
			t.Errorf("list as %s:\n%s\nwant\n%s", v.who, strings.Join(got, "\n"), strings.Join(v.want, "\n"))
		}
	}

	_, err = c.RemoveIntercept(ctx, &teleproto.RemoveInterceptRequest{SessionId: bid, Name: "echo"})
	if err != nil {
		t.Fatalf("Bob leaves echo: %v", err)
	}
	_, err = c.RemoveIntercept(ctx, &teleproto.RemoveInterceptRequest{SessionId: bid, Name: "echo"})
	wantCode(t, "Bob leaves echo again", err, codes.PermissionDenied, "it belongs to alice@alice-laptop")
	s.imu.Lock()
	_, aliceStays := s.intercepts[aliceEcho.id]
	_, bobStays := s.intercepts[bobEcho.id]
	s.imu.Unlock()
	if !aliceStays || bobStays {
		t.Errorf("after Bob's leave echo: Alice's intercept there %v (want true), Bob's %v (want false)", aliceStays, bobStays)
	}
	if _, err := c.RemoveIntercept(ctx, &teleproto.RemoveInterceptRequest{SessionId: aid, Name: "echo"}); err != nil {
		t.Fatalf("Alice leaves echo: %v", err)
	}
	_, err = c.RemoveIntercept(ctx, &teleproto.RemoveInterceptRequest{SessionId: aid, Name: "echo"})
	wantCode(t, "Alice leaves echo again", err, codes.NotFound, "no intercept named echo")
}

// serverWithEchoIntercepts returns a Server holding ics as attached
// nftables intercepts of the pods labelled app=echo, each with a fresh id.
func serverWithEchoIntercepts(t *testing.T, ics ...*intercept) *Server {
	t.Helper()
	s, err := NewServer(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	sel := podSet{selector: labels.SelectorFromSet(labels.Set{"app": "echo"})}
	for _, ic := range ics {
		ic.id = newInterceptID(s.intercepts, ic.pb.Name, ic.pb.Owner)
		ic.selector, ic.mech = sel, mechNftables
		s.intercepts[ic.id] = ic
	}
	return s
}

// TestRoutesByID: two developers' echo intercepts reach the agents as two
// routes, each keyed by its intercept's id, so each routes to its laptop.
func TestRoutesByID(t *testing.T) {
	s := serverWithEchoIntercepts(t,
		testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"),
		testIntercept(t, bob, "echo", "echo", 8080, "x-dev=bob"))
	routes := s.routesFor(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "echo-1", Labels: map[string]string{"app": "echo"}}}, &teleproto.AgentHello{})
	if len(routes) != 2 {
		t.Fatalf("%d routes, want 2: %v", len(routes), routes)
	}
	for _, r := range routes {
		ic := s.intercepts[r.GetIntercept()]
		if ic == nil || strings.Join(r.GetHttpMatch(), ",") != strings.Join(ic.pb.HttpMatch, ",") {
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
	s := serverWithEchoIntercepts(t,
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
		if got := s.routesFor(pod, tc.hello); len(got) != tc.want {
			t.Errorf("features %v: %d routes, want %d: %v", tc.hello.GetFeatures(), len(got), tc.want, got)
		}
	}
}

// echoTarget is deploy/echo as the laptop resolves it.
var echoTarget = &teleproto.InterceptTarget{Pods: &teleproto.InterceptTarget_Selector{
	Selector: &teleproto.LabelSelector{MatchLabels: map[string]string{"app": "echo"}}}}

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
		err               string // "" ok; errNoTarget's text for none
	}{
		{"match labels", echoTarget, true, true, false, ""},
		{"match expressions", selector(&teleproto.LabelSelector{MatchExpressions: []*teleproto.LabelSelectorRequirement{
			expr("app", teleproto.SelectorOperator_SELECTOR_OPERATOR_IN, "echo", "x"),
			expr("tier", teleproto.SelectorOperator_SELECTOR_OPERATOR_EXISTS)}}), true, false, false, ""},
		{"not in and does not exist", selector(&teleproto.LabelSelector{MatchExpressions: []*teleproto.LabelSelectorRequirement{
			expr("app", teleproto.SelectorOperator_SELECTOR_OPERATOR_NOT_IN, "other"),
			expr("tier", teleproto.SelectorOperator_SELECTOR_OPERATOR_DOES_NOT_EXIST)}}), false, true, false, ""},
		{"a bare pod", &teleproto.InterceptTarget{Pods: &teleproto.InterceptTarget_PodName{PodName: "solo"}}, false, true, false, ""},
		{"no target", nil, false, false, false, errNoTarget.Error()},
		{"no pods", &teleproto.InterceptTarget{}, false, false, false, "names no pods"},
		{"empty pod name", &teleproto.InterceptTarget{Pods: &teleproto.InterceptTarget_PodName{}}, false, false, false, "empty pod name"},
		{"empty selector", selector(&teleproto.LabelSelector{}), false, false, false, "every pod"},
		{"unknown operator", selector(&teleproto.LabelSelector{MatchExpressions: []*teleproto.LabelSelectorRequirement{expr("app", 9, "echo")}}), false, false, false, "operator"},
		{"In without values", selector(&teleproto.LabelSelector{MatchExpressions: []*teleproto.LabelSelectorRequirement{
			expr("app", teleproto.SelectorOperator_SELECTOR_OPERATOR_IN)}}), false, false, false, "values"},
		{"bad label key", selector(&teleproto.LabelSelector{MatchLabels: map[string]string{"a b": "c"}}), false, false, false, "name part"},
	} {
		got, err := podSetOf(tc.target)
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
		if got.has(echo) != tc.echo || got.has(solo) != tc.solo || got.has(other) != tc.other {
			t.Errorf("%s (%s): has echo-1 %v, solo %v, other %v; want %v, %v, %v", tc.name, got,
				got.has(echo), got.has(solo), got.has(other), tc.echo, tc.solo, tc.other)
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
		ic.resetIdle = true
		s := serverWithEchoIntercepts(t, ic)
		ic.mech = tc.mech
		routes := s.routesFor(pod, &teleproto.AgentHello{})
		if len(routes) != 1 {
			t.Fatalf("%v: %d routes, want 1", tc.mech, len(routes))
		}
		r := routes[0]
		if r.GetMech() != tc.mech || r.GetMechanism() != tc.oldWord || r.GetResetIdleConnections() != tc.resetIdle {
			t.Errorf("%v: route mech %v, word %q, reset idle %v; want %v, %q, %v", tc.mech, r.GetMech(), r.GetMechanism(), r.GetResetIdleConnections(), tc.mech, tc.oldWord, tc.resetIdle)
		}
	}
	ic := testIntercept(t, alice, "echo", "echo", 8080)
	s := serverWithEchoIntercepts(t, ic)
	ic.mech = mechNone // its first pods' agents are being attached
	if routes := s.routesFor(pod, &teleproto.AgentHello{}); len(routes) != 0 {
		t.Errorf("unattached intercept: routes %v, want none", routes)
	}
}

// TestMechOf: an intercept that insists on a mechanism gets it; one that
// leaves it to the manager gets nftables where the agent can redirect.
func TestMechOf(t *testing.T) {
	redirects, cannot := &teleproto.AgentHello{CanRedirect: true}, &teleproto.AgentHello{}
	for _, tc := range []struct {
		hello     *teleproto.AgentHello
		want, got teleproto.Mechanism
		name      string
	}{
		{redirects, mechNone, mechNftables, "the manager chooses: nftables"},
		{cannot, mechNone, mechService, "no NET_ADMIN: service"},
		{redirects, mechService, mechService, "asked for service"},
		{cannot, mechNftables, mechNftables, "asked for nftables (the agent then fails to redirect)"},
	} {
		if got := mechOf(tc.hello, tc.want); got != tc.got {
			t.Errorf("%s: mechOf = %v, want %v", tc.name, got, tc.got)
		}
	}
}

// TestListState: list says WAITING, in the enum and in the word older
// laptops read, while no running pod's agent applies an intercept, and
// ACTIVE once one does.
func TestListState(t *testing.T) {
	s, c, id, _ := retargetedEcho(t)
	list := func() *teleproto.Intercept {
		t.Helper()
		resp, err := c.ListIntercepts(context.Background(), &teleproto.SessionRequest{SessionId: id})
		if err != nil || len(resp.GetIntercepts()) != 1 {
			t.Fatalf("list: %v, %v", resp, err)
		}
		return resp.GetIntercepts()[0]
	}
	ic := list()
	if ic.GetInterceptState() != teleproto.InterceptState_INTERCEPT_STATE_WAITING || ic.GetState() != `WAITING` {
		t.Errorf("no agent: state %v %q, want WAITING", ic.GetInterceptState(), ic.GetState())
	}
	if ic.GetMech() != mechService || ic.GetMechanism() != `service` {
		t.Errorf("mechanism %v %q, want service in both", ic.GetMech(), ic.GetMechanism())
	}
	s.imu.Lock()
	var icID string
	for k := range s.intercepts {
		icID = k
	}
	s.imu.Unlock()
	s.amu.Lock()
	s.agents["echo-1"] = &agentConn{hello: &teleproto.AgentHello{Pod: "echo-1"}, done: make(chan struct{}),
		lastSent: []*teleproto.AgentRoute{{Intercept: icID}}}
	s.amu.Unlock()
	ic = list()
	if ic.GetInterceptState() != teleproto.InterceptState_INTERCEPT_STATE_ACTIVE || ic.GetState() != `ACTIVE` {
		t.Errorf("agent applies it: state %v %q, want ACTIVE", ic.GetInterceptState(), ic.GetState())
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
	tap.pb.Kind = teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP
	secure := testIntercept(t, alice, "s", "echo", 8443, "x-dev=alice")
	secure.tls = &teleproto.TLSCertificate{Secret: "echo-tls"}
	for _, tc := range []struct {
		name  string
		hello *teleproto.AgentHello
		ic    *intercept
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
		err := agentRefusal(tc.hello, tc.ic, tc.mech)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
