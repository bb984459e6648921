package manager

import (
	"bytes"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-tele/kubectl-tele/internal/testcert"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// TestTLSRouteGating: a route with a certificate goes only to agents that
// advertise AGENT_FEATURE_TLS, with its certificate; an older agent gets
// the others (its pod is uncovered by the TLS intercept).
func TestTLSRouteGating(t *testing.T) {
	ca := testcert.NewCA(t, "ca")
	pair := ca.Leaf(t, "echo.ns.svc")
	secure := testIntercept(t, bob, "echo", "echo", 8443, "x-dev=bob")
	secure.tls = &teleproto.TLSCertificate{Secret: "echo-tls", CertPem: pair.CertPEM, KeyPem: pair.KeyPEM}
	secure.localTLS = true
	s := serverWithEchoIntercepts(t, testIntercept(t, alice, "echo", "echo", 8080, "x-dev=alice"), secure)
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
		got := s.routesFor(pod, &teleproto.AgentHello{Features: tc.features})
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
	ic.tls = &teleproto.TLSCertificate{Secret: "echo-tls", CertPem: pair.CertPEM, KeyPem: pair.KeyPEM}
	ic.pb.TlsSecret = "echo-tls"
	out, err := protojson.Marshal(cloneIntercept(ic, nil))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"tlsSecret":"echo-tls"`) || strings.Contains(string(out), "PRIVATE") || strings.Contains(string(out), "Pem") {
		t.Errorf("list's intercept: %s", out)
	}
}

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
