package teleproto

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

// TestProofStatement: the statement binds the context, the pod, the
// namespace and the nonce, so that no two of them read the same.
func TestProofStatement(t *testing.T) {
	nonce := bytes.Repeat([]byte{7}, NonceSize)
	base := ProofStatement("uid-1", "team", nonce)
	if !bytes.HasPrefix(base, []byte(ProofContext+"\x00")) {
		t.Fatalf("statement %q lacks the context", base)
	}
	for _, other := range [][]byte{
		ProofStatement("uid-2", "team", nonce),
		ProofStatement("uid-1", "team2", nonce),
		ProofStatement("uid-1t", "eam", nonce),
		ProofStatement("uid-1", "team", bytes.Repeat([]byte{8}, NonceSize)),
	} {
		if bytes.Equal(base, other) {
			t.Errorf("%q reads as %q", other, base)
		}
	}
}

// TestSignStatement: what SignStatement makes with each kind of key
// VerifyStatement accepts, and only for that statement and that key.
func TestSignStatement(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	statement := ProofStatement("uid-1", "team", bytes.Repeat([]byte{1}, NonceSize))
	for name, key := range map[string]crypto.Signer{"ecdsa": ec, "rsa": rs, "ed25519": ed} {
		t.Run(name, func(t *testing.T) {
			cert := selfSigned(t, key)
			sig, err := SignStatement(key, statement)
			if err != nil {
				t.Fatal(err)
			}
			if err := VerifyStatement(cert, statement, sig); err != nil {
				t.Errorf("verify: %v", err)
			}
			if err := VerifyStatement(cert, ProofStatement("uid-2", "team", bytes.Repeat([]byte{1}, NonceSize)), sig); err == nil {
				t.Error("a signature for another pod verified")
			}
			if err := VerifyStatement(selfSigned(t, other), statement, sig); err == nil {
				t.Error("a signature verified with another key")
			}
		})
	}
}

func selfSigned(t *testing.T, key crypto.Signer) *x509.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "alice"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
