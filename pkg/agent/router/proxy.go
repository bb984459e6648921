package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kubectl-tele/kubectl-tele/pkg/match"
)

// dest is one place traffic can go: the application, or one route's laptop.
// It owns an HTTP/1.1 and an h2c reverse proxy with their own transports, so
// each request goes upstream in the protocol it arrived in.
type dest struct {
	id      string // intercept id; "" for the application
	match   match.Matcher
	dial    func(ctx context.Context) (net.Conn, error)
	timeout time.Duration // bounds each dial
	c       *counters
	// gone: the last dial found the laptop gone, so fallbacks are logged
	// once per outage rather than once per request.
	gone atomic.Bool

	h1, h2 *httputil.ReverseProxy
	t1, t2 *http.Transport
	// tls serves the requests that came over TLS (tls.go); localTLS: a
	// route's laptop gets them over TLS too.
	tls      *tlsProxies
	localTLS bool
}

func (d *dest) name() string {
	if d.id == "" {
		return "app"
	}
	return "intercept " + d.id
}

// dialRaw dials d within its bound. A laptop that does not answer within
// it is taken for gone: the error then wraps ErrLaptopGone, unless ctx
// itself ended (the client went away, or the router is stopping).
func (d *dest) dialRaw(ctx context.Context) (net.Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	c, err := d.dial(dctx)
	if err == nil {
		return c, nil
	}
	if d.id == "" {
		return nil, err
	}
	if dctx.Err() != nil && ctx.Err() == nil && !errors.Is(err, ErrLaptopGone) {
		err = fmt.Errorf("%w: no answer within %s: %w", ErrLaptopGone, d.timeout, err)
	}
	return nil, &dialError{id: d.id, err: err}
}

func (d *dest) closeIdle() {
	d.t1.CloseIdleConnections()
	d.t2.CloseIdleConnections()
	d.tls.closeIdle()
}

// dialError marks a failure to reach a laptop, told apart from failures later
// in the exchange so the 502 can say what to do.
type dialError struct {
	id  string
	err error
}

func (e *dialError) Error() string {
	return fmt.Sprintf("intercept %s: dial the laptop: %v", e.id, e.err)
}

func (e *dialError) Unwrap() error { return e.err }

func (r *Router) newAppDest() *dest {
	dialer := &net.Dialer{Timeout: r.cfg.DialTimeout, KeepAlive: 30 * time.Second}
	d := &dest{
		c:       r.counter(""),
		timeout: r.cfg.DialTimeout,
		dial: func(ctx context.Context) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, "tcp", r.cfg.AppAddr)
			if err != nil {
				return nil, fmt.Errorf("dial the app at %s: %w", r.cfg.AppAddr, err)
			}
			return c, nil
		},
	}
	r.initProxies(d, r.cfg.AppAddr)
	return d
}

func (r *Router) newRouteDest(rt Route) *dest {
	d := &dest{id: rt.ID, match: rt.Match, dial: rt.Dial, timeout: r.cfg.LaptopDialTimeout, c: r.counter(rt.ID),
		localTLS: rt.TLS != nil && rt.LocalTLS}
	// The host only names the transports' connection pool; the dial
	// function ignores it.
	r.initProxies(d, "laptop.invalid")
	return d
}

func (r *Router) initProxies(d *dest, host string) {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		c, err := d.dialRaw(ctx)
		if err == nil {
			r.laptopBack(d)
		}
		return c, err
	}
	d.t1 = r.newTransport(dial, false)
	d.t2 = r.newTransport(dial, true)
	var t1, t2 http.RoundTripper = d.t1, d.t2
	if d.id != "" {
		t1 = &fallback{r: r, d: d, laptop: d.t1, app: r.app.t1}
		t2 = &fallback{r: r, d: d, laptop: d.t2, app: r.app.t2}
	}
	d.h1 = r.newReverseProxy(d, host, t1)
	d.h2 = r.newReverseProxy(d, host, t2)
	d.tls = r.newTLSProxies(d, host, dial)
}

// fallback sends a route's request to its laptop, and to the application
// instead when the laptop is gone (ErrLaptopGone): the dial failed, so no
// byte of the request went anywhere, and the application answers it as it
// would have without the intercept. A request whose body the laptop's
// transport began to read is never resent; the guard below tells.
type fallback struct {
	r           *Router
	d           *dest
	laptop, app http.RoundTripper
}

func (f *fallback) RoundTrip(req *http.Request) (*http.Response, error) {
	out := req
	var body *unsentBody
	if req.Body != nil && req.Body != http.NoBody {
		body = &unsentBody{rc: req.Body}
		out = req.WithContext(req.Context()) // a shallow copy
		out.Body = body
	}
	resp, err := f.laptop.RoundTrip(out)
	if err == nil || !errors.Is(err, ErrLaptopGone) || req.Context().Err() != nil || body.touched() {
		return resp, err
	}
	f.r.fellBack(f.d, req.RemoteAddr, err)
	toApp := req.WithContext(req.Context())
	u := *req.URL
	u.Host = f.r.cfg.AppAddr
	toApp.URL = &u
	f.r.app.c.requests.Add(1)
	return f.app.RoundTrip(toApp)
}

// fellBack counts and logs traffic of d served by the application because
// d's laptop is gone: a warning when an outage starts, then at debug level.
func (r *Router) fellBack(d *dest, client string, err error) {
	d.c.fallbacks.Add(1)
	if !d.gone.Swap(true) {
		r.log.Warn("the laptop of an intercept is gone; the app serves its traffic until it is back", "intercept", d.id, "client", client, "err", err)
		return
	}
	r.log.Debug("served by the app: the laptop is gone", "intercept", d.id, "client", client, "err", err)
}

// laptopBack logs the end of an outage that fellBack logged, once d's
// laptop took a connection again.
func (r *Router) laptopBack(d *dest) {
	if d.id != "" && d.gone.Swap(false) {
		r.log.Info("the laptop of an intercept takes its traffic again", "intercept", d.id)
	}
}

// unsentBody wraps a request body to learn whether a transport read it,
// and keeps it open for a second transport: Close is the server's, when
// the handler returns.
type unsentBody struct {
	rc   io.ReadCloser
	read atomic.Bool
}

func (b *unsentBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.rc.Read(p)
}

func (b *unsentBody) Close() error { return nil }

// touched reports whether any of the body may have been sent; a nil body
// never was.
func (b *unsentBody) touched() bool { return b != nil && b.read.Load() }

func (r *Router) newTransport(dial func(context.Context, string, string) (net.Conn, error), h2c bool) *http.Transport {
	t := &http.Transport{
		Proxy:                  nil, // never HTTP_PROXY from the pod's environment
		DialContext:            dial,
		MaxIdleConnsPerHost:    r.cfg.MaxIdleConnsPerDest,
		IdleConnTimeout:        r.cfg.UpstreamIdleTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: int64(r.cfg.MaxHeaderBytes),
		// Otherwise the transport adds Accept-Encoding: gzip and inflates
		// the answer itself: the app would see a header the client never
		// sent, and the client would lose the encoding it asked for.
		DisableCompression: true,
	}
	p := new(http.Protocols)
	if h2c {
		p.SetUnencryptedHTTP2(true)
		t.HTTP2 = &http.HTTP2Config{
			// Find a dead laptop tunnel instead of waiting on it forever.
			SendPingTimeout: 30 * time.Second,
			PingTimeout:     15 * time.Second,
		}
	} else {
		p.SetHTTP1(true)
	}
	t.Protocols = p
	return t
}

// forwardHeaders are dropped by ReverseProxy in Rewrite mode; the app saw
// them before the agent came, so they are put back as the client sent them.
var forwardHeaders = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

func (r *Router) newReverseProxy(d *dest, host string, t http.RoundTripper) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = host
			// Out.Host keeps the client's Host header.
			pr.Out.URL.RawQuery = pr.In.URL.RawQuery // Rewrite mode drops unparsable parameters
			for _, k := range forwardHeaders {
				if v, ok := pr.In.Header[k]; ok {
					pr.Out.Header[k] = v
				}
			}
		},
		Transport:  t,
		BufferPool: copyBuffers,
		ErrorLog:   slog.NewLogLogger(r.log.Handler(), slog.LevelDebug),
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			r.proxyError(d, w, req, err)
		},
	}
}

// proxyError answers 502 when a request could not be proxied, saying why.
func (r *Router) proxyError(d *dest, w http.ResponseWriter, req *http.Request, err error) {
	d.c.errors.Add(1)
	log := r.log.With("to", d.name(), "method", req.Method, "path", req.URL.Path, "client", req.RemoteAddr)
	if req.Context().Err() != nil {
		// The client went away, or the router is stopping (its ctx is the
		// requests' base). Either way no one should read a 502 that blames
		// the app: abort, as ReverseProxy itself does when a body copy
		// fails, so the client sees its connection (or h2 stream) end.
		log.Debug("client went away or the router stopped", "err", err)
		panic(http.ErrAbortHandler)
	}
	if d.id == "" && appClosed(err) {
		// The app refused the connection or closed it without an answer:
		// it is stopping (its pod is terminating) or not yet started.
		// Without the agent the client would have been refused or seen
		// its connection closed, so the agent ends the client's
		// connection (or h2 stream) unanswered too. HTTP clients retry an
		// idempotent request that a reused connection ended before any
		// answer, on a new connection and so, through the Service, on
		// another pod: a 502 is an answer no client retries, and an
		// intercept must not fail the requests it does not take.
		log.Info("the app closed or refused the connection: ending the client's unanswered", "err", err)
		panic(http.ErrAbortHandler)
	}
	log.Warn("proxy request failed", "err", err)
	var msg string
	var de *dialError
	switch {
	case errors.As(err, &de):
		msg = fmt.Sprintf("kubectl-tele: intercept %s: nothing answers on the laptop's local port: %v", d.id, de.err)
	case d.id == "":
		msg = fmt.Sprintf("kubectl-tele: the app at %s did not answer: %v", r.cfg.AppAddr, err)
	default:
		msg = fmt.Sprintf("kubectl-tele: intercept %s: the laptop's local port closed the connection or did not answer: %v", d.id, err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusBadGateway)
	fmt.Fprintln(w, msg)
}

func (r *Router) newHTTPServer(ctx context.Context, l net.Listener, track *tracker) *http.Server {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler:           r.handler(track),
		Protocols:         p,
		ReadHeaderTimeout: r.cfg.ReadHeaderTimeout,
		IdleTimeout:       r.cfg.IdleTimeout,
		MaxHeaderBytes:    r.cfg.MaxHeaderBytes,
		// OPTIONS * is the app's to answer (and may match a route), not
		// net/http's, which would answer it here without a word to either.
		DisableGeneralOptionsHandler: true,
		// Requests end when Serve closes every connection (after the
		// drain, if any).
		BaseContext: func(net.Listener) context.Context { return ctx },
		ConnContext: markTLS,
		// Clients that misbehave are not the agent's problem to report loudly.
		ErrorLog: slog.NewLogLogger(r.log.Handler(), slog.LevelDebug),
	}
}

// slowRequest is how long a proxied request may run before the agent says so
// at Info when its client gives up (a long poll or stream ended by its client
// says so too): otherwise a request that timed out leaves no trace here.
var slowRequest = 5 * time.Second // a var for tests

// handler routes each request (each HTTP/2 stream) by its own headers
// against the routes in force when it arrives.
func (r *Router) handler(track *tracker) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !track.add() {
			http.Error(w, "kubectl-tele: agent shutting down", http.StatusServiceUnavailable)
			return
		}
		defer track.done()

		t := r.table.Load()
		dest := t.pick(req)
		if dest == nil {
			dest = r.app
		}
		if len(t.taps) > 0 {
			if queue := t.tee(req); queue != nil {
				defer afterAnswer(w, req, queue)
			}
		}
		if req.ProtoMajor == 1 && strings.EqualFold(req.Header.Get("Upgrade"), "h2c") {
			// Upgrading to h2c mid-connection would pin the connection to
			// one destination; answering in HTTP/1.1 is allowed and keeps
			// per-request routing.
			req.Header.Del("Upgrade")
			req.Header.Del("Http2-Settings")
		}
		dest.c.requests.Add(1)
		proxy := dest.proxy(req)
		if req.ProtoMajor == 1 {
			// Let the upstream answer while the client is still sending, as
			// it could without the agent; net/http refuses by default.
			http.NewResponseController(w).EnableFullDuplex()
		}
		start := time.Now()
		upgrade := req.Header.Get("Upgrade") != ""
		// Deferred: a request the client gave up on ends in a panic with
		// http.ErrAbortHandler (proxyError, or ReverseProxy's body copy).
		defer func() {
			if d := time.Since(start); d > slowRequest && !upgrade && req.Context().Err() != nil {
				r.log.Info("the client gave up on a slow request", "to", dest.name(), "method", req.Method, "path", req.URL.Path,
					"client", req.RemoteAddr, "after", d.Round(time.Millisecond))
			}
		}()
		proxy.ServeHTTP(verbatimWriter{w}, req)
	})
}

// verbatimWriter stops net/http from adding a Date or a sniffed Content-Type
// header that the upstream did not send, so clients see the app's answer as
// the app wrote it. Unwrap keeps Flush and Hijack reachable through
// http.ResponseController, which ReverseProxy uses.
type verbatimWriter struct{ http.ResponseWriter }

func (w verbatimWriter) WriteHeader(code int) {
	if code >= 200 {
		h := w.Header()
		for _, k := range []string{"Date", "Content-Type"} {
			if _, ok := h[k]; !ok {
				h[k] = nil // a nil value suppresses the default
			}
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w verbatimWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// copyBuffers saves ReverseProxy a 32 KiB allocation per request.
var copyBuffers = &bufferPool{}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// appClosed reports whether err, from a request to the app, says the app
// refused the connection or closed it before answering.
func appClosed(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
