package agent

import (
	"crypto/tls"
	"fmt"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// routeCertificate is the certificate a route terminates TLS with, nil for
// a cleartext route. The key lives in this process's memory only; errors
// name the Secret, never its bytes.
func routeCertificate(r *teleproto.AgentRoute) (*tls.Certificate, error) {
	c := r.GetTls()
	if c == nil {
		return nil, nil
	}
	cert, err := tls.X509KeyPair(c.GetCertPem(), c.GetKeyPem())
	if err != nil {
		return nil, fmt.Errorf("intercept %s: the certificate of Secret %s: %w", r.GetIntercept(), c.GetSecret(), err)
	}
	return &cert, nil
}
