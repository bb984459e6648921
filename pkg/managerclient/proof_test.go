package managerclient

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientauthv1 "k8s.io/client-go/pkg/apis/clientauthentication/v1"
	"k8s.io/client-go/rest"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubectl-tele/kubectl-tele/internal/testcert"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// reviewServer is an API server that answers SelfSubjectReviews for the
// bearer tokens it was sent, and remembers them.
func reviewServer(t *testing.T) (*httptest.Server, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/apis/authentication.k8s.io/v1/selfsubjectreviews" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(&authnv1.SelfSubjectReview{Status: authnv1.SelfSubjectReviewStatus{UserInfo: authnv1.UserInfo{Username: "dev"}}})
	}))
	t.Cleanup(srv.Close)
	return srv, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), seen...) }
}

func serverConfig(srv *httptest.Server) *rest.Config {
	return &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: pemOf(srv.Certificate())}}
}

func pemOf(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// TestCredentialOf: the laptop proves its identity with what client-go
// sends the API server: a static token, an exec plugin's token, or a
// client certificate (whose key signs, and is not sent).
func TestCredentialOf(t *testing.T) {
	ctx := context.Background()
	t.Run("static token", func(t *testing.T) {
		srv, seen := reviewServer(t)
		cfg := serverConfig(srv)
		cfg.BearerToken = "static-token"
		c, err := credentialOf(ctx, cfg)
		if err != nil || c.token != "static-token" || c.key != nil {
			t.Fatalf("credential %+v, %v", c, err)
		}
		if s := seen(); len(s) != 1 || s[0] != "Bearer static-token" {
			t.Errorf("the API server saw %q", s)
		}
	})
	t.Run("exec plugin token", func(t *testing.T) {
		srv, _ := reviewServer(t)
		cred, _ := json.Marshal(&clientauthv1.ExecCredential{
			TypeMeta: metav1.TypeMeta{APIVersion: "client.authentication.k8s.io/v1", Kind: "ExecCredential"},
			Status:   &clientauthv1.ExecCredentialStatus{Token: "exec-token"},
		})
		script := filepath.Join(t.TempDir(), "plugin.sh")
		if err := os.WriteFile(script, []byte("#!/bin/sh\ncat <<'EOF'\n"+string(cred)+"\nEOF\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		cfg := serverConfig(srv)
		cfg.ExecProvider = &clientcmdapi.ExecConfig{Command: script, APIVersion: "client.authentication.k8s.io/v1", InteractiveMode: "Never"}
		c, err := credentialOf(ctx, cfg)
		if err != nil || c.token != "exec-token" {
			t.Fatalf("credential %+v, %v", c, err)
		}
	})
	t.Run("client certificate", func(t *testing.T) {
		srv, seen := reviewServer(t)
		pair := testcert.NewCA(t, "kubernetes").Client(t, "alice")
		cfg := serverConfig(srv)
		cfg.CertData, cfg.KeyData = pair.CertPEM, pair.KeyPEM
		c, err := credentialOf(ctx, cfg)
		if err != nil || c.key == nil || c.token != "" || len(c.chain) != 1 {
			t.Fatalf("credential %+v, %v", c, err)
		}
		if len(seen()) != 0 {
			t.Error("a certificate user's credential was looked for with a request")
		}
		nonce := bytes.Repeat([]byte{3}, teleproto.NonceSize)
		p, err := c.proofFor(&teleproto.ChallengeResponse{Nonce: nonce, PodUid: "uid-1"}, "team", "uid-1")
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(p.GetClientCertificate().GetChainDer()[0])
		if err := teleproto.VerifyStatement(leaf, teleproto.ProofStatement("uid-1", "team", nonce), p.GetClientCertificate().GetSignature()); err != nil {
			t.Errorf("the proof does not verify: %v", err)
		}
		if strings.Contains(p.String(), "PRIVATE KEY") {
			t.Error("the proof holds the key")
		}
	})
	t.Run("a challenge from another pod", func(t *testing.T) {
		c := &credential{token: "t"}
		if _, err := c.proofFor(&teleproto.ChallengeResponse{PodUid: "impostor"}, "team", "uid-1"); err == nil || !strings.Contains(err.Error(), "not proving your identity") {
			t.Errorf("proof for another pod: %v", err)
		}
	})
}
