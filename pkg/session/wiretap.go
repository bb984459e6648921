package session

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// errNoWiretaps: a manager that predates wiretaps ignores the request's
// kind and would create an intercept, which takes the requests that a
// wiretap only copies.
var errNoWiretaps = errors.New("the traffic manager predates wiretaps: it would intercept instead; upgrade it (kubectl tele uninstall, then kubectl tele connect) to wiretap")

// refuseWiretap refuses a wiretap that the current manager cannot make.
func (d *Daemon) refuseWiretap(req *teleproto.CreateInterceptRequest) error {
	d.mu.Lock()
	ok := d.wiretaps
	d.mu.Unlock()
	if req.GetKind() == teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP && !ok {
		return status.Error(codes.FailedPrecondition, errNoWiretaps.Error())
	}
	return nil
}
