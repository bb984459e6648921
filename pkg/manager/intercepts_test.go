package manager

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/kubectl-tele/kubectl-tele/pkg/manager/internal/identity"
	"github.com/kubectl-tele/kubectl-tele/pkg/manager/internal/state"
	"github.com/kubectl-tele/kubectl-tele/pkg/match"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

var (
	alice = &session{id: "session-a", user: identity.User{Name: "alice"}, hostUser: "alice", hostname: "a-laptop"}
	bob   = &session{id: "session-b", user: identity.User{Name: "bob"}, hostUser: "bob", hostname: "b-laptop"}
)

// testIntercept is ss's intercept name of deployment/workload's port, with
// the header match terms (none: global). Its decisions are tested in
// package state; here it is what the RPCs find in the table.
func testIntercept(t *testing.T, ss *session, name, workload string, port uint32, terms ...string) *state.Intercept {
	t.Helper()
	m, err := match.Parse(terms)
	if err != nil {
		t.Fatal(err)
	}
	return &state.Intercept{
		PB: &teleproto.Intercept{
			Name: name, WorkloadKind: "Deployment", WorkloadName: workload,
			Port: port, LocalPort: 7070, HttpMatch: terms, Owner: ss.user.Name, OwnerHost: ss.host(),
		},
		Session: ss.id, Owner: ss.user, Match: m,
	}
}

// addIntercept puts ic in s's table, as CreateIntercept does, giving it
// its id.
func addIntercept(t *testing.T, s *Server, ic *state.Intercept) {
	t.Helper()
	s.imu.Lock()
	defer s.imu.Unlock()
	if _, err := s.table.Add(ic); err != nil {
		t.Fatal(err)
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
		resp, err := c.Arrive(ctx, proven(t, c, user))
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
	addIntercept(t, s, aliceEcho)

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
	wantCode(t, "a request without target", err, codes.InvalidArgument, "no target")
	if noTarget != nil {
		t.Errorf("got %v", noTarget)
	}
	// Past the name and conflict checks, the deployment has no running pod.
	wantCode(t, "Bob intercepts echo with his own match", create(bid, "x-dev=bob"), codes.FailedPrecondition, "no running pod")
	wantCode(t, "Bob intercepts echo with Alice's match", create(bid, "x-dev=alice"), codes.AlreadyExists, "already intercepted by alice (on alice@alice-laptop)")
	wantCode(t, "Alice intercepts echo again", create(aid, "x-dev=alice2"), codes.AlreadyExists, "you already have an intercept named echo")

	bobEcho := testIntercept(t, bs, "echo", "echo", 8080, "x-dev=bob")
	addIntercept(t, s, bobEcho)
	for _, v := range []struct {
		who, id string
		want    []string
	}{
		{"alice", aid, []string{"echo x-dev=alice alice (on alice@alice-laptop) (you)", "echo x-dev=bob bob (on bob@bob-laptop)"}},
		{"bob", bid, []string{"echo x-dev=alice alice (on alice@alice-laptop)", "echo x-dev=bob bob (on bob@bob-laptop) (you)"}},
	} {
		list, err := c.ListIntercepts(ctx, &teleproto.SessionRequest{SessionId: v.id})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ic := range list.GetIntercepts() {
			row := ic.GetName() + " " + strings.Join(ic.GetHttpMatch(), ",") + " " + ic.Who()
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
	wantCode(t, "Bob leaves echo again", err, codes.PermissionDenied, "it belongs to alice (on alice@alice-laptop)")
	s.imu.Lock()
	aliceStays := s.table.Get(aliceEcho.ID) != nil
	bobStays := s.table.Get(bobEcho.ID) != nil
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
// nftables intercepts of the pods labelled app=echo.
func serverWithEchoIntercepts(t *testing.T, ics ...*state.Intercept) *Server {
	t.Helper()
	s, err := NewServer(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	sel := state.PodSet{Selector: labels.SelectorFromSet(labels.Set{"app": "echo"})}
	for _, ic := range ics {
		ic.Pods, ic.Mech = sel, mechNftables
		state.Decide(ic, "echo-1", true)
		addIntercept(t, s, ic)
	}
	return s
}

// TestRoutesFor: the Server gives an agent the routes its table decides
// (the cases are package state's).
func TestRoutesFor(t *testing.T) {
	s := serverWithEchoIntercepts(t,
		testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"),
		testIntercept(t, bob, "echo", "echo", 8080, "x-dev=bob"))
	echo := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "echo-1", Labels: map[string]string{"app": "echo"}}}
	if routes := s.routesFor(echo); len(routes) != 2 {
		t.Errorf("%d routes, want 2: %v", len(routes), routes)
	}
	if mech := s.mechFor(echo); mech != mechNftables {
		t.Errorf("a new echo pod gets %v, want nftables", mech)
	}
}

// echoTarget is deploy/echo as the laptop resolves it.
var echoTarget = &teleproto.InterceptTarget{Pods: &teleproto.InterceptTarget_Selector{
	Selector: &teleproto.LabelSelector{MatchLabels: map[string]string{"app": "echo"}}}}

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
	if ic.GetInterceptState() != teleproto.InterceptState_INTERCEPT_STATE_WAITING {
		t.Errorf("no agent: state %v, want WAITING", ic.GetInterceptState())
	}
	if ic.GetMech() != mechService {
		t.Errorf("mechanism %v, want service", ic.GetMech())
	}
	s.imu.Lock()
	icID := s.table.All()[0].ID
	s.imu.Unlock()
	s.agents.mu.Lock()
	s.agents.byPod["echo-1"] = &agentConn{hello: &teleproto.AgentHello{Pod: "echo-1"}, done: make(chan struct{}),
		lastSent: []*teleproto.AgentRoute{{Intercept: icID}}}
	s.agents.mu.Unlock()
	ic = list()
	if ic.GetInterceptState() != teleproto.InterceptState_INTERCEPT_STATE_ACTIVE {
		t.Errorf("agent applies it: state %v, want ACTIVE", ic.GetInterceptState())
	}
}
