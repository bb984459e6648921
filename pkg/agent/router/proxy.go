package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"github.com/kubectl-tele/kubectl-tele/pkg/agent/match"
)

// dest is one place traffic can go: the application, or one route's laptop.
// It owns an HTTP/1.1 and an h2c reverse proxy with their own transports, so
// each request goes upstream in the protocol it arrived in.
type dest struct {
	id    string // intercept id; "" for the application
	match match.Matcher
	dial  func(ctx context.Context) (net.Conn, error)
	c     *counters

	h1, h2 *httputil.ReverseProxy
	t1, t2 *http.Transport
}

func (d *dest) name() string {
	if d.id == "" {
		return "app"
	}
	return "intercept " + d.id
}

func (d *dest) dialRaw(ctx context.Context) (net.Conn, error) {
	c, err := d.dial(ctx)
	if err != nil {
		if d.id == "" {
			return nil, err
		}
		return nil, &dialError{id: d.id, err: err}
	}
	return c, nil
}

func (d *dest) closeIdle() {
	d.t1.CloseIdleConnections()
	d.t2.CloseIdleConnections()
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
		c: r.counter(""),
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
	d := &dest{id: rt.ID, match: rt.Match, dial: rt.Dial, c: r.counter(rt.ID)}
	// The host only names the transports' connection pool; the dial
	// function ignores it.
	r.initProxies(d, "laptop.invalid")
	return d
}

func (r *Router) initProxies(d *dest, host string) {
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(ctx, r.cfg.DialTimeout)
		defer cancel()
		return d.dialRaw(ctx)
	}
	d.t1 = r.newTransport(dial, false)
	d.t2 = r.newTransport(dial, true)
	d.h1 = r.newReverseProxy(d, host, d.t1)
	d.h2 = r.newReverseProxy(d, host, d.t2)
}

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

func (r *Router) newReverseProxy(d *dest, host string, t *http.Transport) *httputil.ReverseProxy {
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
		// Requests end when Serve's ctx does.
		BaseContext: func(net.Listener) context.Context { return ctx },
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

		dest := r.table.Load().pick(req)
		if dest == nil {
			dest = r.app
		}
		if req.ProtoMajor == 1 && strings.EqualFold(req.Header.Get("Upgrade"), "h2c") {
			// Upgrading to h2c mid-connection would pin the connection to
			// one destination; answering in HTTP/1.1 is allowed and keeps
			// per-request routing.
			req.Header.Del("Upgrade")
			req.Header.Del("Http2-Settings")
		}
		dest.c.requests.Add(1)
		proxy := dest.h2
		if req.ProtoMajor == 1 {
			proxy = dest.h1
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
