package session

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubectl-tele/kubectl-tele/pkg/managerclient"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// errNoWiretaps: a manager that predates wiretaps ignores the request's
// kind and would create an intercept, which takes the requests that a
// wiretap only copies.
var errNoWiretaps = errors.New("the traffic manager predates wiretaps: it would intercept instead; upgrade it (kubectl tele uninstall, then kubectl tele connect) to wiretap")

// errNoTLS: a manager that predates TLS intercepts drops the certificate.
var errNoTLS = errors.New("the traffic manager predates TLS intercepts (--tls-secret): it would route the port's TLS without the certificate; upgrade it (kubectl tele uninstall, then kubectl tele connect)")

// refuseUnknown refuses what the manager of client c would misread: a
// wiretap, or a TLS intercept, where its ArriveResponse did not say it knows
// them. That answer is c's own: if the daemon has reconnected since c was
// taken, nothing is sent through c at all.
func (d *Daemon) refuseUnknown(c *managerclient.Client, req *teleproto.CreateInterceptRequest) error {
	wiretap := req.GetKind() == teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP
	if !wiretap && req.GetTls() == nil {
		return nil
	}
	d.mu.Lock()
	current, taps, tls := d.client == c, d.wiretaps, d.tlsIntercepts
	d.mu.Unlock()
	switch {
	case !current:
		return status.Error(codes.Unavailable, "the daemon reconnected to the manager meanwhile; try again")
	case wiretap && !taps:
		return status.Error(codes.FailedPrecondition, errNoWiretaps.Error())
	case req.GetTls() != nil && !tls:
		return status.Error(codes.FailedPrecondition, errNoTLS.Error())
	}
	return nil
}
