package manager

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-tele/kubectl-tele/pkg/objects"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// TestAgentCA: the first manager of a namespace makes its CA, in the
// Secret; the next one reuses it. The serving certificate is for the
// agents' Service's names, verifies against the CA by the name agents ask
// for, over TLS 1.3 only, and is renewed when half its life has passed.
func TestAgentCA(t *testing.T) {
	client := newFakeClientset()
	s1 := setUpAgents(t, client)
	s2 := setUpAgents(t, client)
	if s1.agentCA == nil || string(s1.agentCA.pem) != string(s2.agentCA.pem) {
		t.Fatal("a second manager made another CA")
	}
	sec, err := client.CoreV1().Secrets(testNS).Get(context.Background(), objects.AgentCASecret, metav1.GetOptions{})
	if err != nil || len(sec.Data[caKeyKey]) == 0 || string(sec.Data[caCertKey]) != string(s1.agentCA.pem) {
		t.Fatalf("CA secret: %v", err)
	}
	ca := s1.agentCA
	if got := ca.cert.NotAfter.Sub(ca.cert.NotBefore); got < 9*365*24*time.Hour || !ca.cert.MaxPathLenZero {
		t.Errorf("CA lives %v, path length zero %v", got, ca.cert.MaxPathLenZero)
	}
	want := []string{"kubectl-tele-manager", "kubectl-tele-manager.team", "kubectl-tele-manager.team.svc", "kubectl-tele-manager.team.svc.cluster.local"}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.pem)
	c, err := ca.issue()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range want {
		if _, err := c.Leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
			t.Errorf("serving certificate for %s: %v", name, err)
		}
	}
	if d := c.Leaf.NotAfter.Sub(time.Now()); d > servingLifetime {
		t.Errorf("serving certificate lives %v", d)
	}

	// An agent's handshake: TLS 1.3, the name it asks for.
	server, client2 := net.Pipe()
	defer server.Close()
	defer client2.Close()
	go tls.Server(server, ca.serverTLS()).Handshake()
	tc := tls.Client(client2, &tls.Config{RootCAs: pool, ServerName: teleproto.ManagerServerName(testNS)})
	if err := tc.Handshake(); err != nil || tc.ConnectionState().Version != tls.VersionTLS13 {
		t.Errorf("handshake: %v, version %x", err, tc.ConnectionState().Version)
	}
	// TLS 1.2 is refused.
	server12, client12 := net.Pipe()
	defer server12.Close()
	defer client12.Close()
	go tls.Server(server12, ca.serverTLS()).Handshake()
	if err := tls.Client(client12, &tls.Config{RootCAs: pool, ServerName: teleproto.ManagerServerName(testNS), MaxVersion: tls.VersionTLS12}).Handshake(); err == nil {
		t.Error("TLS 1.2 accepted")
	}

	// Renewal.
	now := time.Now()
	ca.now = func() time.Time { return now.Add(servingLifetime/2 - time.Minute) }
	if same, _ := ca.issue(); same != c {
		t.Error("renewed before half its life")
	}
	ca.now = func() time.Time { return now.Add(servingLifetime/2 + time.Minute) }
	if renewed, _ := ca.issue(); renewed == c || !renewed.Leaf.NotAfter.After(c.Leaf.NotAfter) {
		t.Error("not renewed after half its life")
	}
}

// TestAgentCASecretBroken: a CA Secret that holds no CA is refused,
// saying how to start over; the error does not quote the key.
func TestAgentCASecretBroken(t *testing.T) {
	sec := testCASecret()
	sec.Data[caKeyKey] = []byte("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n")
	cfg := testConfig(t)
	cfg.Client = newFakeClientset(sec)
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = s.setupAgents(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "kubectl tele uninstall") || strings.Contains(err.Error(), "c2VjcmV0") {
		t.Errorf("setupAgents: %v", err)
	}
}
