package router

// TLS termination, for routes that carry the certificate the app's clients
// expect (kubectl tele intercept --tls-secret).
//
// A connection whose first bytes are a TLS ClientHello (sniffTLS: the record
// header only; the handshake itself is crypto/tls's) is terminated with the
// routes' certificates, offering ALPN h2 and http/1.1 so that gRPC over TLS
// keeps working. The requests inside are then served by the same HTTP server
// and matched exactly as in cleartext; ConnContext marks them as having come
// over TLS, and:
//
//   - a request no route takes goes to the app over TLS again. The agent is
//     the app's TLS client on the pod's loopback, and verifies nothing: the
//     app's certificate names its Service, not 127.0.0.1, so a check of the
//     name against the address dialed cannot pass, and the connection never
//     leaves the pod's network namespace, where nothing sits between the
//     agent and the app. The client's own verification (of the certificate
//     the agent presents, the one it expects) is what protects it;
//   - a request a route takes goes to its laptop in cleartext over the
//     tunnel (HTTP/1.1, or h2c for gRPC, which needs HTTP/2), or, with
//     LocalTLS, over TLS to the laptop's own server, whose certificate (its
//     own, often self-signed) is not verified either: the tunnel through the
//     manager is what reaches the laptop, and the developer chose the port.
//
// Without a route certificate, TLS is not HTTP to the router and goes raw to
// the app (or whole to a global route's laptop), as before.

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"
)

const (
	recordTypeHandshake = 0x16
	// maxRecord is the largest TLS record payload a peer may send
	// (2^14 plus the expansion RFC 8446 allows for older versions).
	maxRecord = 1<<14 + 2048
	// clientHello is the handshake message type of a ClientHello.
	clientHello = 1
)

// sniffTLS classifies bytes that start with a handshake record type: the
// record header of a ClientHello (type 22, version 3.x, a plausible length)
// followed by the handshake type 1 is protoTLS; fewer than six bytes of it,
// protoUnknown; anything else, protoOther.
func sniffTLS(b []byte) proto {
	for i := 1; i < min(len(b), 6); i++ {
		switch i {
		case 1:
			if b[1] != 3 {
				return protoOther
			}
		case 2:
			if b[2] > 4 { // SSL 3.0 to TLS 1.3 in the record layer
				return protoOther
			}
		case 4:
			if n := int(b[3])<<8 | int(b[4]); n == 0 || n > maxRecord {
				return protoOther
			}
		case 5:
			if b[5] != clientHello {
				return protoOther
			}
		}
	}
	if len(b) < 6 {
		return protoUnknown
	}
	return protoTLS
}

// serverTLSConfig is the TLS server configuration of a route table: the
// certificates of its routes (crypto/tls picks one by the client's SNI, the
// first otherwise), or nil when no route has one.
func serverTLSConfig(routes []Route) *tls.Config {
	var certs []tls.Certificate
	for _, rt := range routes {
		if rt.TLS != nil {
			certs = append(certs, *rt.TLS)
		}
	}
	if len(certs) == 0 {
		return nil
	}
	return &tls.Config{
		Certificates: certs,
		NextProtos:   []string{"h2", "http/1.1"},
		MinVersion:   tls.VersionTLS12,
	}
}

// serveTLS terminates the TLS of client c, whose first bytes are prefix, and
// gives the connection inside to the HTTP server (or, if what it carries is
// not HTTP, to the app over TLS).
func (r *Router) serveTLS(ctx context.Context, c net.Conn, prefix []byte, cfg *tls.Config, hl *handoffListener, track *tracker) {
	log := r.log.With("client", c.RemoteAddr().String())
	tc := tls.Server(&prefixConn{Conn: c, prefix: prefix}, cfg)
	hctx, cancel := context.WithTimeout(ctx, r.cfg.ReadHeaderTimeout)
	err := tc.HandshakeContext(hctx)
	cancel()
	if err != nil {
		// A client that does not trust the certificate hangs up here; it
		// says why on its side.
		log.Debug("TLS handshake failed", "err", err)
		c.Close()
		return
	}
	var inner []byte
	switch tc.ConnectionState().NegotiatedProtocol {
	case "h2", "http/1.1":
	default: // no ALPN: look at what the client sends
		var p proto
		p, inner = r.sniffConn(tc, r.cfg.PeekTimeout)
		if p == protoOther {
			log.Debug("not HTTP inside TLS; passing through to the app over TLS")
			r.pipeTLS(ctx, tc, inner)
			return
		}
	}
	if !track.add() {
		tc.Close()
		return
	}
	hc := &handoffConn{Conn: tc, prefix: inner, closed: track.done}
	hc.stop = context.AfterFunc(ctx, func() { hc.Close() })
	if !hl.handoff(ctx, hc) {
		hc.Close()
	}
}

// pipeTLS splices a terminated client connection to the app over TLS.
func (r *Router) pipeTLS(ctx context.Context, client *tls.Conn, prefix []byte) {
	up := r.dial(ctx, client, r.app)
	if up == nil {
		client.Close()
		return
	}
	// Not verified: see the file's comment.
	// The client's SNI goes on, for an app that picks its certificate by
	// name.
	tu := tls.Client(up, &tls.Config{InsecureSkipVerify: true, ServerName: client.ConnectionState().ServerName}) //nolint:gosec // loopback in the pod
	hctx, cancel := context.WithTimeout(ctx, r.cfg.DialTimeout)
	err := tu.HandshakeContext(hctx)
	cancel()
	if err != nil {
		r.dialFailed(client, r.app, err)
		up.Close()
		client.Close()
		return
	}
	r.splice(ctx, client, prefix, tu, nil, r.app)
}

// prefixConn replays bytes already read before its connection's own.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

type tlsInKey struct{}

// markTLS is the HTTP server's ConnContext: requests of a connection whose
// TLS the router terminated carry the mark that dest.proxy reads.
func markTLS(ctx context.Context, c net.Conn) context.Context {
	if hc, ok := c.(*handoffConn); ok {
		if tc, ok := hc.Conn.(*tls.Conn); ok {
			return context.WithValue(ctx, tlsInKey{}, tc.ConnectionState().ServerName)
		}
	}
	return ctx
}

func tlsIn(req *http.Request) bool { return req.Context().Value(tlsInKey{}) != nil }

// serverName is the name a request's client asked for in its TLS
// ClientHello (SNI), "" if none or not over TLS.
func serverName(req *http.Request) string {
	s, _ := req.Context().Value(tlsInKey{}).(string)
	return s
}

// proxy returns the reverse proxy for one request to d: by the protocol it
// arrived in, and whether it came over TLS.
func (d *dest) proxy(req *http.Request) *httputil.ReverseProxy {
	h1 := req.ProtoMajor == 1
	switch {
	case tlsIn(req) && h1:
		return d.tls.h1
	case tlsIn(req):
		return d.tls.h2
	case h1:
		return d.h1
	}
	return d.h2
}

// tlsProxies are a dest's proxies for requests that came over TLS, and the
// TLS transports they own (nil where they reuse the cleartext ones).
type tlsProxies struct {
	h1, h2 *httputil.ReverseProxy
	t1, t2 *http.Transport
}

func (p *tlsProxies) closeIdle() {
	if p == nil {
		return
	}
	for _, t := range []*http.Transport{p.t1, p.t2} {
		if t != nil {
			t.CloseIdleConnections()
		}
	}
}

// newTLSProxies builds d's proxies for requests that came over TLS: to the
// app over TLS; to a laptop over TLS (LocalTLS) or in cleartext, falling
// back to the app over TLS when the laptop is gone.
func (r *Router) newTLSProxies(d *dest, host string, dial func(context.Context, string, string) (net.Conn, error)) *tlsProxies {
	p := &tlsProxies{}
	var rt1, rt2 http.RoundTripper
	switch {
	case d.id == "" || d.localTLS:
		p.t1, p.t2 = r.newTLSTransport(dial, false), r.newTLSTransport(dial, true)
		rt1, rt2 = p.t1, p.t2
	default:
		// A laptop's cleartext server need not speak h2c: the client
		// chose HTTP/2 by ALPN with the agent, not with it. gRPC needs
		// HTTP/2 and goes h2c, as a gRPC server in cleartext speaks it.
		rt1 = d.t1
		rt2 = grpcOverH2C{h1: d.t1, h2c: d.t2}
	}
	if d.id != "" {
		app := r.app.tls
		rt1 = &fallback{r: r, d: d, laptop: rt1, app: httpsOnly{app.t1}}
		rt2 = &fallback{r: r, d: d, laptop: rt2, app: httpsOnly{app.t2}}
	}
	scheme := "http"
	if d.id == "" || d.localTLS {
		scheme = "https"
	}
	p.h1 = r.overTLS(r.newReverseProxy(d, host, rt1), scheme)
	p.h2 = r.overTLS(r.newReverseProxy(d, host, rt2), scheme)
	return p
}

// overTLS makes p's requests go out with scheme, and with the client's SNI
// as their URL's host: the TLS transports send it as the server name (the
// default of http.Transport, for an app that picks its certificate by
// name), and pool connections by it, so that a connection made for one
// name never serves another. Every dial ignores the host.
func (r *Router) overTLS(p *httputil.ReverseProxy, scheme string) *httputil.ReverseProxy {
	rewrite := p.Rewrite
	p.Rewrite = func(pr *httputil.ProxyRequest) {
		rewrite(pr)
		pr.Out.URL.Scheme = scheme
		if sni := serverName(pr.In); sni != "" {
			pr.Out.URL.Host = net.JoinHostPort(sni, "443")
		}
	}
	return p
}

// newTLSTransport is newTransport over TLS, verifying nothing (see the
// file's comment). h2 offers HTTP/2 and HTTP/1.1 by ALPN, so an app that
// serves TLS without HTTP/2 still answers the requests of an h2 client.
func (r *Router) newTLSTransport(dial func(context.Context, string, string) (net.Conn, error), h2 bool) *http.Transport {
	t := r.newTransport(dial, false)
	t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // see the file's comment
	t.TLSHandshakeTimeout = r.cfg.DialTimeout
	// A pool per client SNI (overTLS): bound them together, too.
	t.MaxIdleConns = 4 * r.cfg.MaxIdleConnsPerDest
	p := new(http.Protocols)
	p.SetHTTP1(true)
	if h2 {
		p.SetHTTP2(true)
		t.HTTP2 = &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second}
	}
	t.Protocols = p
	return t
}

// grpcOverH2C sends gRPC requests over h2c and every other one over
// HTTP/1.1.
type grpcOverH2C struct{ h1, h2c http.RoundTripper }

func (g grpcOverH2C) RoundTrip(req *http.Request) (*http.Response, error) {
	if isGRPC(req) {
		return g.h2c.RoundTrip(req)
	}
	return g.h1.RoundTrip(req)
}

// httpsOnly sends a request over TLS whatever its URL's scheme: the
// fallback of a cleartext laptop's request to the app over TLS.
type httpsOnly struct{ rt http.RoundTripper }

func (h httpsOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "https" {
		return h.rt.RoundTrip(req)
	}
	out := req.WithContext(req.Context())
	u := *req.URL
	u.Scheme = "https"
	out.URL = &u
	return h.rt.RoundTrip(out)
}

func isGRPC(req *http.Request) bool {
	return strings.HasPrefix(req.Header.Get("Content-Type"), "application/grpc")
}
