package agent

import (
	"strings"
	"testing"

	"github.com/kubectl-tele/kubectl-tele/internal/testcert"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

func TestRouteCertificate(t *testing.T) {
	ca := testcert.NewCA(t, "ca")
	a, b := ca.Leaf(t, "a.ns.svc"), ca.Leaf(t, "b.ns.svc")
	tests := []struct {
		name    string
		tls     *teleproto.TLSCertificate
		want    bool
		wantErr string
	}{
		{name: "cleartext"},
		{name: "pair", tls: &teleproto.TLSCertificate{Secret: "s", CertPem: a.CertPEM, KeyPem: a.KeyPEM}, want: true},
		{name: "key of another", tls: &teleproto.TLSCertificate{Secret: "s", CertPem: a.CertPEM, KeyPem: b.KeyPEM}, wantErr: "Secret s"},
		{name: "empty", tls: &teleproto.TLSCertificate{Secret: "s"}, wantErr: "Secret s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := routeCertificate(&teleproto.AgentRoute{Intercept: "i", Tls: tt.tls})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want one naming %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "PRIVATE KEY") {
					t.Errorf("the error shows the key: %v", err)
				}
				return
			}
			if err != nil || (c != nil) != tt.want {
				t.Fatalf("got %v, %v; want a certificate: %v", c, err, tt.want)
			}
		})
	}
}
