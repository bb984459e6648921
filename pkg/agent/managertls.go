package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"sync/atomic"

	"google.golang.org/grpc/credentials"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// managerCreds are the agent's TLS credentials for the manager: TLS 1.3,
// the certificate verified against the namespace's CA for the agents'
// Service's name, whatever address the agent dials (a name, or a
// ClusterIP). The token goes only inside a connection so verified.
//
// A manager whose certificate fails verification is not the namespace's:
// another install's (kubectl tele uninstall deleted the CA this agent was
// given), or an impostor. The failure is kept, and the agent, told by
// refusal, exits as it does when the manager refuses its token.
type managerCreds struct {
	credentials.TransportCredentials
	refused *atomic.Pointer[tls.CertificateVerificationError]
}

// newManagerCreds trusts only the CA certificates in caPEM, for a manager
// in namespace ns.
func newManagerCreds(caPEM []byte, ns string) (*managerCreds, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no CA certificate to verify the manager with (TELE_AGENT_CA, which the manager sets)")
	}
	return &managerCreds{
		TransportCredentials: credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: teleproto.ManagerServerName(ns)}),
		refused:              new(atomic.Pointer[tls.CertificateVerificationError]),
	}, nil
}

// ClientHandshake implements credentials.TransportCredentials.
func (c *managerCreds) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	tc, info, err := c.TransportCredentials.ClientHandshake(ctx, authority, conn)
	if verr, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		c.refused.Store(verr)
	}
	return tc, info, err
}

// Clone implements credentials.TransportCredentials; the clone shares the
// refusal.
func (c *managerCreds) Clone() credentials.TransportCredentials {
	return &managerCreds{TransportCredentials: c.TransportCredentials.Clone(), refused: c.refused}
}

// refusal is the verification failure of the manager's certificate, nil if
// none failed (or c is nil: no TLS, in tests of other things).
func (c *managerCreds) refusal() error {
	if c == nil {
		return nil
	}
	if verr := c.refused.Load(); verr != nil {
		return verr
	}
	return nil
}
