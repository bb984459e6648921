package plugin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/kubectl-tele/kubectl-tele/pkg/target"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// checkTLS reads and checks --tls-secret, and refuses filters on a port
// that serves TLS when there is none: the agents cannot see the requests
// inside. It runs before anything changes in the cluster.
//
// Whether the port serves TLS is learnt by the laptop itself: connected,
// it reaches pod IPs as a pod does, so it opens one TLS handshake to a
// running pod's IP and port. That works on any cluster, with agents of any
// version (an agent that reported it would need a new protocol field and
// would be attached first, leaving something behind on a refusal), and
// costs one connection to the app. A port that answers neither way within
// the probe's time (a pod IP this laptop does not route, a server that
// waits) is not refused: the intercept goes ahead as before.
func (o *InterceptOptions) checkTLS(ctx context.Context, w *target.Workload, t target.Target) (*teleproto.TLSCertificate, error) {
	wiretap := o.kind == teleproto.InterceptKind_INTERCEPT_KIND_WIRETAP
	// A wiretap copies requests, which it cannot see inside TLS, with or
	// without filters.
	filters := len(o.terms) > 0 || wiretap
	if o.TLSSecret == "" && !filters {
		return nil, nil // the whole port, TLS or not, as before
	}
	var cert *teleproto.TLSCertificate
	if o.TLSSecret != "" {
		s, warnings, err := target.ReadTLSSecret(ctx, o.client, w.Namespace, o.TLSSecret, time.Now())
		if err != nil {
			return nil, err
		}
		for _, wmsg := range warnings {
			fmt.Fprintln(o.Streams.ErrOut, "warning:", wmsg)
		}
		fmt.Fprintf(o.Streams.ErrOut, "  terminating TLS with the certificate of %s\n", s.Describe())
		cert = &teleproto.TLSCertificate{Secret: s.Name, CertPem: s.CertPEM, KeyPem: s.KeyPEM}
	}
	addr := o.probeAddr(ctx, w, t)
	if addr == "" {
		return cert, nil
	}
	switch speaksTLS(ctx, addr, 3*time.Second) {
	case tlsYes:
		if cert == nil && wiretap {
			return nil, fmt.Errorf("port %d of %s/%s serves TLS (a pod at %s answered a TLS handshake): a wiretap cannot see the requests inside it, and wiretaps do not terminate TLS; nothing was changed",
				t.Port, strings.ToLower(w.Kind), w.Name, addr)
		}
		if cert == nil {
			return nil, fmt.Errorf("port %d of %s/%s serves TLS (a pod at %s answered a TLS handshake): header, path and method filters cannot see the requests inside it. "+
				"Give the certificate its clients expect with --tls-secret NAME (a kubernetes.io/tls Secret in namespace %s), or intercept the whole port without filters (your local server must then speak TLS itself); nothing was changed",
				t.Port, strings.ToLower(w.Kind), w.Name, addr, w.Namespace)
		}
	case tlsNo:
		if cert != nil {
			fmt.Fprintf(o.Streams.ErrOut, "warning: port %d of %s/%s answered a TLS handshake in cleartext (at %s): --tls-secret applies only to clients that speak TLS to it\n",
				t.Port, strings.ToLower(w.Kind), w.Name, addr)
		}
	}
	return cert, nil
}

// probeAddr is a running pod's IP and the target port; "" if there is no
// such pod yet (CreateIntercept then says so).
func (o *InterceptOptions) probeAddr(ctx context.Context, w *target.Workload, t target.Target) string {
	pod, err := target.RunningPod(ctx, o.client, w)
	if err != nil || pod.Status.PodIP == "" {
		return ""
	}
	return net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(t.Port)))
}

type tlsAnswer int

const (
	tlsUnknown tlsAnswer = iota
	tlsYes
	tlsNo
)

// speaksTLS opens a TLS handshake to addr. It verifies nothing: it only
// asks whether a TLS server answers. A handshake, or a TLS alert (a server
// that wants a client certificate or another version), is a TLS server; an
// answer that is not a TLS record (an HTTP server's 400) is not; a dial
// error or silence is unknown.
func speaksTLS(ctx context.Context, addr string, timeout time.Duration) tlsAnswer {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}}} //nolint:gosec // a probe, nothing is sent
	c, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		c.Close()
		return tlsYes
	}
	var rh tls.RecordHeaderError
	var alert tls.AlertError
	switch {
	case errors.As(err, &rh):
		return tlsNo
	case errors.As(err, &alert):
		return tlsYes
	}
	return tlsUnknown
}

// tlsNote says, after an intercept is created, how TLS is handled.
func tlsNote(ic *teleproto.Intercept) string {
	switch {
	case ic.GetTlsSecret() == "":
		return ""
	case ic.GetLocalTls():
		return fmt.Sprintf(" over TLS (the agents terminate the clients' TLS with Secret %s)", ic.GetTlsSecret())
	}
	return fmt.Sprintf(" in cleartext (the agents terminate the clients' TLS with Secret %s)", ic.GetTlsSecret())
}

// tlsColumn is list's note on an intercept's TLS, after its match.
func tlsColumn(ic *teleproto.Intercept) string {
	switch {
	case ic.GetTlsSecret() == "":
		return ""
	case ic.GetLocalTls():
		return " tls-secret=" + ic.GetTlsSecret() + ",local-tls"
	}
	return " tls-secret=" + ic.GetTlsSecret()
}
