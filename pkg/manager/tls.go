package manager

import (
	"crypto/tls"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// interceptTLS checks the certificate of an intercept request, nil for a
// cleartext intercept.
//
// The laptop reads the kubernetes.io/tls Secret with its user's own
// credentials and sends its certificate and key here, so the manager's Role
// needs no access to the namespace's Secrets, and a user who may not read a
// Secret cannot use it. The manager keeps them in memory only (an intercept
// is gone with the manager, and the daemon sends it again to the next one),
// hands them to the agents in AgentRoute (only to agents that can apply
// them, see state.Table.RoutesFor), and shows only the Secret's name.
// Errors name the Secret, never the bytes.
func interceptTLS(req *teleproto.CreateInterceptRequest) (*teleproto.TLSCertificate, error) {
	c := req.GetTls()
	if c == nil {
		if req.GetLocalTls() {
			return nil, status.Error(codes.InvalidArgument, "local TLS needs a certificate to terminate the clients' TLS with (--tls-secret NAME)")
		}
		return nil, nil
	}
	if _, err := tls.X509KeyPair(c.GetCertPem(), c.GetKeyPem()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "the certificate of Secret %s: %v", c.GetSecret(), err)
	}
	return c, nil
}
