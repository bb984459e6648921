package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authorization/v1"
)

var t0 = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

// issue makes a certificate for subject, signed by parent (self-signed when
// parent is nil), valid an hour around t0.
func issue(t *testing.T, subject pkix.Name, ca bool, usage []x509.ExtKeyUsage, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: subject,
		NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour),
		IsCA: ca, BasicConstraintsValid: true, ExtKeyUsage: usage,
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if ca {
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

// TestVerifyChain: a client certificate authenticates only when the
// cluster's CA signed it (directly or through an intermediate), for client
// auth, and it is valid now; a forged one (same subject, another CA) does not.
func TestVerifyChain(t *testing.T) {
	ca, caKey := issue(t, pkix.Name{CommonName: "kubernetes"}, true, nil, nil, nil)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	alice, _ := issue(t, pkix.Name{CommonName: "alice", Organization: []string{"dev"}}, false, client, ca, caKey)
	server, _ := issue(t, pkix.Name{CommonName: "alice"}, false, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, ca, caKey)
	inter, interKey := issue(t, pkix.Name{CommonName: "intermediate"}, true, nil, ca, caKey)
	viaInter, _ := issue(t, pkix.Name{CommonName: "carol"}, false, client, inter, interKey)
	evil, evilKey := issue(t, pkix.Name{CommonName: "kubernetes"}, true, nil, nil, nil)
	forged, _ := issue(t, pkix.Name{CommonName: "alice"}, false, client, evil, evilKey)

	tests := []struct {
		name    string
		chain   []*x509.Certificate
		at      time.Time
		want    string // the leaf's CN, "" for a refusal
		wantErr string
	}{
		{"signed by the cluster CA", []*x509.Certificate{alice}, t0, "alice", ""},
		{"through an intermediate it sends", []*x509.Certificate{viaInter, inter}, t0, "carol", ""},
		{"intermediate missing", []*x509.Certificate{viaInter}, t0, "", "unknown authority"},
		{"forged: another CA of the same name", []*x509.Certificate{forged}, t0, "", "unknown authority"},
		{"forged, with its CA in the chain", []*x509.Certificate{forged, evil}, t0, "", "unknown authority"},
		{"server certificate", []*x509.Certificate{server}, t0, "", "incompatible key usage"},
		{"expired", []*x509.Certificate{alice}, t0.Add(2 * time.Hour), "", "expired"},
		{"none", nil, t0, "", "no client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ders [][]byte
			for _, c := range tt.chain {
				ders = append(ders, c.Raw)
			}
			leaf, err := VerifyChain(ders, roots, tt.at)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || leaf.Subject.CommonName != tt.want {
				t.Fatalf("leaf %v, err %v; want %s", leaf, err, tt.want)
			}
		})
	}
	if _, err := VerifyChain([][]byte{[]byte("junk")}, roots, t0); err == nil {
		t.Error("junk DER verified")
	}
}

// TestFromCertificate: the API server's x509 mapping.
func TestFromCertificate(t *testing.T) {
	tests := []struct {
		subject pkix.Name
		want    User
		wantErr bool
	}{
		{pkix.Name{CommonName: "kubernetes-admin", Organization: []string{"kubeadm:cluster-admins"}},
			User{Name: "kubernetes-admin", Groups: []string{"kubeadm:cluster-admins", Authenticated}}, false},
		{pkix.Name{CommonName: "alice"}, User{Name: "alice", Groups: []string{Authenticated}}, false},
		{pkix.Name{CommonName: "bob", Organization: []string{"a", "b"}}, User{Name: "bob", Groups: []string{"a", "b", Authenticated}}, false},
		{pkix.Name{Organization: []string{"system:masters"}}, User{}, true},
	}
	for _, tt := range tests {
		got, err := FromCertificate(&x509.Certificate{Subject: tt.subject})
		if (err != nil) != tt.wantErr || got.Name != tt.want.Name || !slices.Equal(got.Groups, tt.want.Groups) || got.UID != "" {
			t.Errorf("FromCertificate(%v) = %+v, %v; want %+v", tt.subject, got, err, tt.want)
		}
	}
}

// TestNonces: a nonce is good once, within its TTL; an unknown one never;
// the table stays bounded, the oldest going first.
func TestNonces(t *testing.T) {
	var n Nonces
	a := n.Issue(t0, 32)
	b := n.Issue(t0, 32)
	if len(a) != 32 || string(a) == string(b) {
		t.Fatalf("nonces %x %x", a, b)
	}
	if !n.Take(a, t0.Add(time.Second)) {
		t.Error("fresh nonce refused")
	}
	if n.Take(a, t0.Add(time.Second)) {
		t.Error("nonce taken twice")
	}
	if n.Take(b, t0.Add(NonceTTL)) {
		t.Error("expired nonce taken")
	}
	if n.Take([]byte("guess"), t0) {
		t.Error("unknown nonce taken")
	}
	first := n.Issue(t0, 32)
	for range MaxNonces {
		n.Issue(t0, 32)
	}
	if len(n.issued) > MaxNonces || len(n.order) != len(n.issued) {
		t.Errorf("table holds %d (%d in order), max %d", len(n.issued), len(n.order), MaxNonces)
	}
	if n.Take(first, t0) {
		t.Error("the oldest nonce survived a full table")
	}
	// Expired ones go when new ones are issued.
	n.Issue(t0.Add(2*NonceTTL), 32)
	if len(n.issued) != 1 {
		t.Errorf("after expiry the table holds %d", len(n.issued))
	}
}

// TestReviews: an intercept needs patch pods/ephemeralcontainers on each
// pod, and update on each Service only where it may retarget them.
func TestReviews(t *testing.T) {
	desc := func(as []authv1.ResourceAttributes) string {
		var out []string
		for _, a := range as {
			if a.Namespace != "team" {
				t.Errorf("review in namespace %q", a.Namespace)
			}
			out = append(out, Describe(a))
		}
		return strings.Join(out, "; ")
	}
	tests := []struct {
		pods, services []string
		retarget       bool
		want           string
	}{
		{[]string{"echo-2", "echo-1", "echo-1"}, []string{"echo"}, false,
			"patch pods/ephemeralcontainers echo-1; patch pods/ephemeralcontainers echo-2"},
		{[]string{"echo-1"}, []string{"echo", "echo-headless", "echo"}, true,
			"patch pods/ephemeralcontainers echo-1; update services echo; update services echo-headless"},
		{[]string{"solo"}, nil, true, "patch pods/ephemeralcontainers solo"},
	}
	for _, tt := range tests {
		if got := desc(Reviews("team", tt.pods, tt.services, tt.retarget)); got != tt.want {
			t.Errorf("Reviews(%v, %v, %v) = %s, want %s", tt.pods, tt.services, tt.retarget, got, tt.want)
		}
	}
}

func TestRefusal(t *testing.T) {
	u := User{Name: "mallory"}
	msg := Refusal(u, "team", Reviews("team", []string{"echo-1", "echo-2"}, nil, false))
	for _, want := range []string{"mallory may not patch pods/ephemeralcontainers echo-1, patch pods/ephemeralcontainers echo-2 in namespace team",
		"kubectl auth can-i patch pods/ephemeralcontainers -n team", "nothing was changed"} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal %q lacks %q", msg, want)
		}
	}
}
