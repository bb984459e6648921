package teleproto

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
)

// ProofContext starts every statement a laptop signs with its client
// certificate's key (ClientCertificateProof): a key that also signs TLS
// handshakes or other protocols' messages cannot be made to sign one of
// ours by them, nor ours be taken for theirs.
const ProofContext = "kubectl-tele session proof v2"

// NonceSize is the length of a Challenge's nonce.
const NonceSize = 32

// ProofStatement is what a ClientCertificateProof signs: ProofContext, the
// manager pod's UID, its namespace and the Challenge's nonce, separated by
// NULs (which neither a UID nor a namespace holds). A signature is good for
// one Arrive at the manager pod that gave the nonce, and no other.
func ProofStatement(podUID, namespace string, nonce []byte) []byte {
	b := make([]byte, 0, len(ProofContext)+len(podUID)+len(namespace)+len(nonce)+3)
	b = append(b, ProofContext...)
	b = append(b, 0)
	b = append(b, podUID...)
	b = append(b, 0)
	b = append(b, namespace...)
	b = append(b, 0)
	return append(b, nonce...)
}

// SignStatement signs statement with a client certificate's key, as
// VerifyStatement checks it: ECDSA (ASN.1) and RSA PKCS #1 v1.5 over
// SHA-256, which every signer has (hardware and exec-plugin keys
// included), or Ed25519 over the statement itself.
func SignStatement(key crypto.Signer, statement []byte) ([]byte, error) {
	switch key.Public().(type) {
	case *ecdsa.PublicKey, *rsa.PublicKey:
		sum := sha256.Sum256(statement)
		return key.Sign(rand.Reader, sum[:], crypto.SHA256)
	case ed25519.PublicKey:
		return key.Sign(rand.Reader, statement, crypto.Hash(0))
	default:
		return nil, fmt.Errorf("a client certificate key of type %T cannot sign (ECDSA, RSA and Ed25519 can)", key.Public())
	}
}

// VerifyStatement checks sig, made by SignStatement, with cert's key.
func VerifyStatement(cert *x509.Certificate, statement, sig []byte) error {
	var algo x509.SignatureAlgorithm
	switch cert.PublicKeyAlgorithm {
	case x509.ECDSA:
		algo = x509.ECDSAWithSHA256
	case x509.RSA:
		algo = x509.SHA256WithRSA
	case x509.Ed25519:
		algo = x509.PureEd25519
	default:
		return fmt.Errorf("client certificate key algorithm %v is not supported (ECDSA, RSA and Ed25519 are)", cert.PublicKeyAlgorithm)
	}
	if err := cert.CheckSignature(algo, statement, sig); err != nil {
		return errors.New("the signature does not verify with the certificate's key")
	}
	return nil
}

// Who is an intercept's owner for people: the identity the API server
// gave its session (Owner), and, as a hint, where its laptop says it is
// (OwnerHost): "alice (on alice@laptop)".
func (x *Intercept) Who() string {
	if x.GetOwnerHost() == "" {
		return x.GetOwner()
	}
	return x.GetOwner() + " (on " + x.GetOwnerHost() + ")"
}
