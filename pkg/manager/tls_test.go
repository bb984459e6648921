package manager

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubectl-tele/kubectl-tele/internal/testcert"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

func TestInterceptTLSValidation(t *testing.T) {
	ca := testcert.NewCA(t, "ca")
	a, b := ca.Leaf(t, "a.ns.svc"), ca.Leaf(t, "b.ns.svc")
	for _, tc := range []struct {
		name string
		req  *teleproto.CreateInterceptRequest
		code codes.Code
	}{
		{"cleartext", &teleproto.CreateInterceptRequest{}, codes.OK},
		{"pair", &teleproto.CreateInterceptRequest{Tls: &teleproto.TLSCertificate{Secret: "s", CertPem: a.CertPEM, KeyPem: a.KeyPEM}, LocalTls: true}, codes.OK},
		{"mismatch", &teleproto.CreateInterceptRequest{Tls: &teleproto.TLSCertificate{Secret: "s", CertPem: a.CertPEM, KeyPem: b.KeyPEM}}, codes.InvalidArgument},
		{"local tls alone", &teleproto.CreateInterceptRequest{LocalTls: true}, codes.InvalidArgument},
	} {
		_, err := interceptTLS(tc.req)
		if status.Code(err) != tc.code {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.code)
		}
		if err != nil && strings.Contains(err.Error(), "PRIVATE") {
			t.Errorf("%s: the error shows the key: %v", tc.name, err)
		}
	}
}
