package manager

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

func testWiretap(t *testing.T, ss *session, name, workload string, port uint32, terms ...string) *intercept {
	t.Helper()
	ic := testIntercept(t, ss, name, workload, port, terms...)
	ic.pb.Kind = teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP
	return ic
}

// TestWiretapConflict: wiretaps take nothing, so they never conflict with
// one another or with intercepts, global or not; names stay per session,
// and intercepts still conflict among themselves beside a wiretap.
func TestWiretapConflict(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing []*intercept
		ic       *intercept
		code     codes.Code
		says     string
	}{
		{name: "wiretap beside a header intercept",
			existing: []*intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testWiretap(t, bob, "echo", "echo", 8080, "x-dev=alice")},
		{name: "wiretap under a global intercept",
			existing: []*intercept{testIntercept(t, alice, "echo", "echo", 8080)},
			ic:       testWiretap(t, bob, "echo", "echo", 8080)},
		{name: "global wiretap over header intercepts",
			existing: []*intercept{testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testWiretap(t, bob, "tap", "echo", 8080)},
		{name: "a second identical wiretap",
			existing: []*intercept{testWiretap(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testWiretap(t, bob, "echo", "echo", 8080, "x-dev=alice")},
		{name: "own second wiretap under another name",
			existing: []*intercept{testWiretap(t, alice, "echo", "echo", 8080)},
			ic:       testWiretap(t, alice, "echo-2", "echo", 8080)},
		{name: "global intercept over a wiretap",
			existing: []*intercept{testWiretap(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080)},
		{name: "intercept with a wiretap's match",
			existing: []*intercept{testWiretap(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, "x-dev=alice")},
		{name: "own name again",
			existing: []*intercept{testWiretap(t, alice, "echo", "echo", 8080)},
			ic:       testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"),
			code:     codes.AlreadyExists, says: "you already have an intercept named echo"},
		{name: "intercepts still conflict beside a wiretap",
			existing: []*intercept{testWiretap(t, alice, "tap", "echo", 8080), testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice")},
			ic:       testIntercept(t, bob, "echo", "echo", 8080, "x-dev=alice"),
			code:     codes.AlreadyExists, says: "already intercepted by alice@a-laptop (intercept echo)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := conflict(byID(tc.existing...), tc.ic)
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
	s := serverWithEchoIntercepts(t,
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
		for _, r := range s.routesFor(pod, &teleproto.AgentHello{Features: tc.features}) {
			got = append(got, r.GetKind().String())
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("features %v: routes of kinds %v, want %v", tc.features, got, tc.want)
		}
	}
}

// TestInterceptKind: an older laptop's UNSPECIFIED is an intercept; an
// unknown kind is refused, not taken for one.
func TestInterceptKind(t *testing.T) {
	for _, tc := range []struct {
		in   teleproto.InterceptKind
		want teleproto.InterceptKind
		code codes.Code
	}{
		{teleproto.InterceptKind_INTERCEPT_KIND_UNSPECIFIED, teleproto.InterceptKind_INTERCEPT_KIND_INTERCEPT, codes.OK},
		{teleproto.InterceptKind_INTERCEPT_KIND_INTERCEPT, teleproto.InterceptKind_INTERCEPT_KIND_INTERCEPT, codes.OK},
		{teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP, teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP, codes.OK},
		{teleproto.InterceptKind(9), 0, codes.InvalidArgument},
	} {
		got, err := interceptKind(tc.in)
		if got != tc.want || status.Code(err) != tc.code {
			t.Errorf("%v: %v, %v; want %v, code %v", tc.in, got, err, tc.want, tc.code)
		}
	}
}

// TestWiretapCopies: list's counters sum what each agent last reported of
// the wiretap; a later report replaces an earlier one.
func TestWiretapCopies(t *testing.T) {
	s := serverWithEchoIntercepts(t)
	a1, a2 := &agentConn{}, &agentConn{}
	s.agents["echo-1"], s.agents["echo-2"] = a1, a2
	a1.noteWiretaps([]*teleproto.WiretapCounters{{Intercept: "tap", Sent: 5, Dropped: 1}, {Intercept: "other", Sent: 100}})
	a1.noteWiretaps([]*teleproto.WiretapCounters{{Intercept: "tap", Sent: 7, Dropped: 2}})
	a2.noteWiretaps([]*teleproto.WiretapCounters{{Intercept: "tap", Sent: 3}})
	a2.noteWiretaps(nil)
	if sent, dropped := s.wiretapCopies("tap"); sent != 10 || dropped != 2 {
		t.Errorf("tap: %d sent, %d dropped; want 10, 2", sent, dropped)
	}
}
