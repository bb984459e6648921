package session

import (
	"testing"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// TestRefuseWiretap: a wiretap is asked only of a manager that knows them;
// intercepts of every kind go to any manager.
func TestRefuseWiretap(t *testing.T) {
	for _, tc := range []struct {
		kind     teleproto.InterceptKind
		wiretaps bool
		refused  bool
	}{
		{teleproto.InterceptKind_INTERCEPT_KIND_UNSPECIFIED, false, false},
		{teleproto.InterceptKind_INTERCEPT_KIND_INTERCEPT, false, false},
		{teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP, false, true},
		{teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP, true, false},
	} {
		d := &Daemon{wiretaps: tc.wiretaps}
		if err := d.refuseWiretap(&teleproto.CreateInterceptRequest{Kind: tc.kind}); (err != nil) != tc.refused {
			t.Errorf("%v to a manager with wiretaps=%v: %v, want refused %v", tc.kind, tc.wiretaps, err, tc.refused)
		}
	}
}
