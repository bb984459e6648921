package manager

// The agents' link is TLS 1.3 (crypto/tls and crypto/x509 of the standard
// library: all this needs is one CA and one serving certificate, which
// they make and verify in a few calls; a PKI library would add code, not
// safety). The manager makes, once per namespace, a CA that it keeps in a
// Secret only its Role reads (by name), gives each agent the CA's
// certificate (public) in its spec, and issues itself a short-lived
// serving certificate for the agents' Service. Agents verify it by the
// Service's name and the CA, and then send their token inside TLS, which
// the manager still checks on every call.
//
// The CA lives ten years and is not rotated in place: kubectl tele
// uninstall deletes it with the token, and the next connect's manager
// makes a new one. Agents given the earlier CA refuse the new manager and
// exit (as they would for the earlier token), and the next intercept of
// their pods adds fresh ones (see staleAgent).

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-tele/kubectl-tele/pkg/objects"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

const (
	caCertKey = "ca.crt"
	caKeyKey  = "ca.key"
	// caEnv, in an agent's spec, is the CA certificate (PEM) the agent
	// verifies the manager with: public, so it needs no Secret.
	caEnv = "TELE_AGENT_CA"

	caLifetime = 10 * 365 * 24 * time.Hour
	// servingLifetime bounds the serving certificate: the manager issues a
	// new one when half of it has passed, at the next handshake.
	servingLifetime = 24 * time.Hour
	// clockSkew backdates certificates, for nodes whose clocks differ.
	clockSkew = time.Hour
)

// agentCA is the namespace's CA, and the serving certificate it issued.
type agentCA struct {
	cert  *x509.Certificate
	key   *ecdsa.PrivateKey
	pem   []byte // cert, as agents get it
	names []string
	now   func() time.Time

	mu      sync.Mutex
	serving *tls.Certificate
}

// loadAgentCA returns the CA in Secret objects.AgentCASecret, making it first if
// there is none; names are the DNS names of the serving certificates it
// will issue. Created only if absent, not applied: see setupAgents.
func (s *Server) loadAgentCA(ctx context.Context, names []string) (*agentCA, error) {
	secrets := s.cfg.Client.CoreV1().Secrets(s.cfg.Namespace)
	sec, err := secrets.Get(ctx, objects.AgentCASecret, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		var certPEM, keyPEM []byte
		certPEM, keyPEM, err = newCA(s.cfg.Namespace, s.now())
		if err != nil {
			return nil, err
		}
		sec, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: objects.AgentCASecret, Labels: map[string]string{"app.kubernetes.io/managed-by": "kubectl-tele"}},
			Data:       map[string][]byte{caCertKey: certPEM, caKeyKey: keyPEM},
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			sec, err = secrets.Get(ctx, objects.AgentCASecret, metav1.GetOptions{})
		}
	}
	if err != nil {
		return nil, fmt.Errorf("agent CA secret %s/%s: %w", s.cfg.Namespace, objects.AgentCASecret, err)
	}
	ca, err := parseCA(sec.Data[caCertKey], sec.Data[caKeyKey])
	if err != nil {
		return nil, fmt.Errorf("agent CA secret %s/%s: %w (kubectl tele uninstall -n %s removes it; the next connect makes a new one)", s.cfg.Namespace, objects.AgentCASecret, err, s.cfg.Namespace)
	}
	ca.names, ca.now = names, s.now
	if _, err := ca.issue(); err != nil {
		return nil, err
	}
	return ca, nil
}

// agentServerNames are the names agents may reach the manager by, for its
// serving certificate: the Service's, short and qualified.
func agentServerNames(ns, clusterDomain string) []string {
	names := []string{AgentService, AgentService + "." + ns, teleproto.ManagerServerName(ns)}
	if clusterDomain != "" {
		names = append(names, teleproto.ManagerServerName(ns)+"."+clusterDomain)
	}
	return names
}

// newCA makes a CA for namespace ns: an ECDSA P-256 key and a certificate
// that may sign only server certificates (path length 0).
func newCA(ns string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("agent CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serialNumber(),
		Subject:               pkix.Name{CommonName: "kubectl-tele agents' CA, namespace " + ns},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("agent CA certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("agent CA key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// parseCA reads a CA that newCA made. Errors never quote the key.
func parseCA(certPEM, keyPEM []byte) (*agentCA, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("not a CA certificate and its key: %w", err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || !pair.Leaf.IsCA {
		return nil, errors.New("not an ECDSA CA")
	}
	return &agentCA{cert: pair.Leaf, key: key, pem: certPEM, now: time.Now}, nil
}

// issue returns a serving certificate valid for at least half of
// servingLifetime, issuing a new one when the last is older.
func (ca *agentCA) issue() (*tls.Certificate, error) {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	now := ca.now()
	if c := ca.serving; c != nil && now.Before(c.Leaf.NotAfter.Add(-servingLifetime/2)) {
		return c, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("serving key: %w", err)
	}
	notAfter := now.Add(servingLifetime)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serialNumber(),
		Subject:      pkix.Name{CommonName: ca.names[0]},
		DNSNames:     ca.names,
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	ca.serving = &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	return ca.serving, nil
}

// serverTLS is the agents' port's TLS configuration: TLS 1.3 only, with a
// serving certificate that is renewed as it ages.
func (ca *agentCA) serverTLS() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return ca.issue() },
	}
}

func serialNumber() *big.Int {
	// 128 random bits; rand.Int fails only if the system's source does,
	// and then crypto/rand does not return.
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	return n
}
