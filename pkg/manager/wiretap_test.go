package manager

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

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
	s.agents.byPod["echo-1"], s.agents.byPod["echo-2"] = a1, a2
	a1.noteWiretaps([]*teleproto.WiretapCounters{{Intercept: "tap", Sent: 5, Dropped: 1}, {Intercept: "other", Sent: 100}})
	a1.noteWiretaps([]*teleproto.WiretapCounters{{Intercept: "tap", Sent: 7, Dropped: 2}})
	a2.noteWiretaps([]*teleproto.WiretapCounters{{Intercept: "tap", Sent: 3}})
	a2.noteWiretaps(nil)
	if sent, dropped := s.wiretapCopies("tap"); sent != 10 || dropped != 2 {
		t.Errorf("tap: %d sent, %d dropped; want 10, 2", sent, dropped)
	}
}
