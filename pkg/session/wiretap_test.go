package session

import (
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubectl-tele/kubectl-tele/pkg/managerclient"

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
		c := &managerclient.Client{}
		d := &Daemon{wiretaps: tc.wiretaps, client: c}
		if err := d.refuseUnknown(c, &teleproto.CreateInterceptRequest{Kind: tc.kind}); (err != nil) != tc.refused {
			t.Errorf("%v to a manager with wiretaps=%v: %v, want refused %v", tc.kind, tc.wiretaps, err, tc.refused)
		}
	}
}

// A wiretap checked against one manager is not sent through the client of
// another: the daemon reconnected between the two.
func TestRefuseWiretapAfterReconnect(t *testing.T) {
	old, cur := &managerclient.Client{}, &managerclient.Client{}
	d := &Daemon{wiretaps: true, client: cur}
	err := d.refuseUnknown(old, &teleproto.CreateInterceptRequest{Kind: teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP})
	if status.Code(err) != codes.Unavailable {
		t.Errorf("wiretap through the previous manager's client: %v, want Unavailable", err)
	}
}

// A TLS intercept is asked only of a manager that knows them.
func TestRefuseTLS(t *testing.T) {
	tlsReq := &teleproto.CreateInterceptRequest{Tls: &teleproto.TLSCertificate{Secret: "web-tls"}}
	for _, knows := range []bool{false, true} {
		c := &managerclient.Client{}
		d := &Daemon{client: c, tlsIntercepts: knows}
		err := d.refuseUnknown(c, tlsReq)
		if (err != nil) == knows {
			t.Errorf("TLS intercept to a manager with tls_intercepts=%v: %v", knows, err)
		}
		if err := d.refuseUnknown(c, &teleproto.CreateInterceptRequest{}); err != nil {
			t.Errorf("plain intercept to a manager with tls_intercepts=%v: %v", knows, err)
		}
	}
}
