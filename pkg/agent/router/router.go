// Package router decides, connection by connection and HTTP request by HTTP
// request, whether traffic that reached the agent goes to the application in
// the pod or to a developer's laptop.
//
// A redirect (set up elsewhere) sends connections for the application's port
// to the agent's listener; Router.Serve accepts them. What happens next
// depends on the routes in force when the connection arrives:
//
//   - no routes, and there never were header routes: the connection is
//     spliced to the application as raw TCP, so an idle agent is transparent
//     to every protocol;
//   - no routes, but there were header routes before (an intercept with
//     --http-match left): connections are served as under header routes,
//     every request going to the application. A client's pooled connection
//     opened now is then routed request by request when the next intercept
//     comes; spliced raw, it would bypass that intercept for as long as the
//     client kept it open (seen: none of 1,200 matching requests reached
//     the laptop of an intercept started under load);
//   - a global route (an intercept without --http-match): the connection is
//     spliced as raw TCP to that route's laptop;
//   - header routes: the first bytes are sniffed. HTTP/1.x and HTTP/2 with
//     prior knowledge (h2c, gRPC without TLS) are served by net/http and every
//     request or stream is proxied on its own headers, path and method
//     (package match): to the first route whose matcher accepts it, else to
//     the application. A gRPC call's path is its method
//     (/package.Service/Method), so gRPC routes by method that way. Anything else is
//     spliced raw to the application.
//
// What the application sees when a request passes through the proxy: the same
// method, URI (query string byte for byte), Host, headers (names in canonical
// case, hop-by-hop headers such as Connection and Keep-Alive regenerated, as
// by any HTTP/1.1 intermediary), body and trailers. The proxy does not add
// X-Forwarded-For or Forwarded: without the agent the application sees none,
// and those the client sent are passed on untouched. The application does see
// the connection come from 127.0.0.1 instead of the client's address; that
// is the price of terminating HTTP in the agent. Likewise requests from many
// clients share the agent's pooled upstream connections (HTTP/2 streams of
// several clients may travel on one connection to the application).
//
// Not supported: the HTTP/1.1 "Upgrade: h2c" dance (the Upgrade header is
// dropped and the request answered in HTTP/1.1, which RFC 9113 allows), TLS
// (it is not HTTP to the sniffer and goes raw to the application, so header
// routes cannot see inside it), and WebSockets over HTTP/2 (RFC 8441).
package router

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kubectl-tele/kubectl-tele/pkg/match"
)

// Route sends the traffic one intercept asked for to that intercept's laptop.
type Route struct {
	// ID identifies the intercept in logs, errors and Stats.
	ID string
	// Match selects HTTP requests by their headers, path and method. A
	// global matcher means the whole TCP connection, whatever its protocol,
	// goes to the laptop.
	Match match.Matcher
	// Dial opens a connection to the laptop's local port for this intercept.
	// It must return once ctx is done (Serve waits for it), and ctx bounds
	// the dial only: the connection must outlive it. An error that wraps
	// ErrLaptopGone means no laptop takes the connection: the router then
	// serves the request (or the connection) with the application. Any
	// other error means the laptop is there but failed the dial (nothing
	// listens on its local port): a request gets a 502 saying so, as the
	// developer should learn that their server is down.
	Dial func(ctx context.Context) (net.Conn, error)
	// TLS, when set, is the certificate the app's clients expect: the
	// router terminates their TLS with it and routes the requests inside
	// as in cleartext (see tls.go). Such a route is never global: even
	// without terms it takes requests, not raw connections.
	TLS *tls.Certificate
	// LocalTLS: the requests this route takes reach its laptop over TLS
	// too (with TLS only); otherwise in cleartext.
	LocalTLS bool
	// Wiretap: the application still answers the matching requests, and
	// a copy of each goes to the laptop (see wiretap.go). A wiretap never
	// takes a connection whole, whatever its matcher.
	Wiretap bool
}

// ErrLaptopGone is what a Route's Dial wraps when the intercept has no
// laptop to take the connection: its daemon died or lost its link (the
// manager says so), or it did not answer within LaptopDialTimeout. The
// workload's traffic must not wait for a laptop that is not coming back.
var ErrLaptopGone = errors.New("the laptop of the intercept is gone")

// Config tunes a Router. Zero fields take the defaults shown.
type Config struct {
	// AppAddr is where the application listens inside the pod, such as
	// "127.0.0.1:8080". The redirect does not apply to the agent's own
	// connections, so dialing it reaches the application. Required.
	AppAddr string
	// Logger receives the router's logs; nil discards them.
	Logger *slog.Logger
	// PeekTimeout is how long a new connection may stay silent before the
	// router asks the application whether it speaks first (MySQL, SMTP,
	// ...): it dials the application and whichever side then speaks first
	// decides (see firstSpeaker). A silent HTTP client loses nothing; the
	// client of a server-first protocol gets its greeting this much later.
	// Only used once header routes have been set. Default 2s.
	PeekTimeout time.Duration
	// DialTimeout bounds each dial to the application. Default 5s.
	DialTimeout time.Duration
	// LaptopDialTimeout bounds each dial to a laptop: one that has not
	// answered by then is taken for gone (ErrLaptopGone), and the request
	// is served by the application. A connected laptop answers within a
	// few round trips through the manager; the manager gives up on a
	// silent one sooner (1.5 s) and says why. Default 3s.
	LaptopDialTimeout time.Duration
	// IdleTimeout closes client HTTP connections that carry no request for
	// this long. Default 2m.
	IdleTimeout time.Duration
	// ReadHeaderTimeout bounds the time to read one request's headers.
	// Default 30s.
	ReadHeaderTimeout time.Duration
	// MaxHeaderBytes bounds request headers from clients and response
	// headers from upstreams. Default 1 MiB.
	MaxHeaderBytes int
	// MaxIdleConnsPerDest bounds the idle upstream connections kept open to
	// the application and to each laptop, per protocol. Default 64.
	MaxIdleConnsPerDest int
	// UpstreamIdleTimeout closes idle upstream connections. Default 90s.
	UpstreamIdleTimeout time.Duration
	// DrainTimeout is how long Serve, once its ctx ends, lets the HTTP
	// requests in flight finish (idle connections close at once, HTTP/2
	// ones with a GOAWAY, and nothing new is accepted) before it closes
	// every connection. Zero: at once. Other connections (passed through,
	// upgraded) go on for as long, then close.
	DrainTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.PeekTimeout, 2*time.Second)
	def(&c.DialTimeout, 5*time.Second)
	def(&c.LaptopDialTimeout, 3*time.Second)
	def(&c.IdleTimeout, 2*time.Minute)
	def(&c.ReadHeaderTimeout, 30*time.Second)
	def(&c.UpstreamIdleTimeout, 90*time.Second)
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 1 << 20
	}
	if c.MaxIdleConnsPerDest <= 0 {
		c.MaxIdleConnsPerDest = 64
	}
}

// Router routes the connections and requests reaching the agent. Its methods
// are safe for concurrent use.
type Router struct {
	cfg Config
	log *slog.Logger
	app *dest

	table atomic.Pointer[table]
	// headerRoutesSeen: header routes were set once; the port speaks HTTP,
	// and stays served request by request (see the package doc).
	headerRoutesSeen atomic.Bool

	mu       sync.Mutex // guards counters, taps and closed
	counters map[string]*counters
	taps     map[string]*tap // by route ID
	closed   bool            // Serve ended: no new taps
}

// table is an immutable snapshot of the routes; SetRoutes swaps in a new one.
type table struct {
	global *dest   // takes everything when set
	routes []*dest // header routes in priority order
	// tls terminates clients' TLS when a route has a certificate.
	tls  *tls.Config
	taps []tapRoute
}

// New returns a Router with no routes: it passes everything to cfg.AppAddr.
func New(cfg Config) *Router {
	cfg.setDefaults()
	r := &Router{
		cfg:      cfg,
		log:      cfg.Logger,
		counters: map[string]*counters{},
		taps:     map[string]*tap{},
	}
	r.app = r.newAppDest()
	r.table.Store(&table{})
	return r
}

// SetRoutes replaces the routes atomically. The first route in routes whose
// matcher accepts a request wins, so callers order routes by priority. A
// global route takes precedence over every header route; if several are
// given the first wins. Connections already spliced and requests already in
// flight finish on the path they started on; the next request on a kept-alive
// HTTP connection is routed by the new routes.
func (r *Router) SetRoutes(routes []Route) {
	next := &table{}
	seen := map[string]bool{}
	var taps []Route
	for _, rt := range routes {
		switch {
		case rt.ID == "":
			r.log.Error("route has no id; ignored")
			continue
		case rt.Dial == nil:
			r.log.Error("route has no dial function; ignored", "intercept", rt.ID)
			continue
		case seen[rt.ID]:
			r.log.Error("route id given twice; the second is ignored", "intercept", rt.ID)
			continue
		}
		seen[rt.ID] = true
		if rt.Wiretap {
			taps = append(taps, rt)
			continue
		}
		d := r.newRouteDest(rt)
		if rt.Match.Global() && rt.TLS == nil {
			if next.global != nil {
				r.log.Warn("two global routes; the first takes all traffic", "intercept", rt.ID, "winner", next.global.id)
				continue
			}
			next.global = d
			continue
		}
		next.routes = append(next.routes, d)
	}
	next.tls = serverTLSConfig(routes)
	if next.global != nil && len(next.routes) > 0 {
		r.log.Warn("a global route takes all traffic; header routes are idle", "intercept", next.global.id)
	}

	r.mu.Lock()
	for id := range r.counters {
		if id != "" && !seen[id] {
			delete(r.counters, id)
		}
	}
	r.mu.Unlock()

	next.taps = r.setTaps(taps)
	if len(next.routes) > 0 || len(next.taps) > 0 {
		r.headerRoutesSeen.Store(true)
	}
	old := r.table.Swap(next)
	// Idle upstream connections of replaced routes close now; busy ones
	// close when their request ends (see http.Transport.CloseIdleConnections).
	old.closeIdle()
	r.log.Info("routes set", "header_routes", len(next.routes), "global", next.global != nil, "tls", next.tls != nil, "wiretaps", len(next.taps))
}

func (t *table) closeIdle() {
	if t.global != nil {
		t.global.closeIdle()
	}
	for _, d := range t.routes {
		d.closeIdle()
	}
}

// pick returns the destination of one HTTP request.
func (t *table) pick(req *http.Request) *dest {
	if t.global != nil {
		return t.global
	}
	for _, d := range t.routes {
		if d.match.MatchRequest(req) {
			return d
		}
	}
	return nil
}

// Counters count what went one way.
type Counters struct {
	// Requests counts HTTP requests (HTTP/2 streams) proxied.
	Requests uint64
	// Conns counts TCP connections spliced raw.
	Conns uint64
	// Errors counts requests answered 502, requests ended unanswered
	// because the app refused them (its pod is stopping), and connections
	// that could not be dialed.
	Errors uint64
	// Fallbacks counts, for a route, the requests and connections that
	// went to its laptop's route but were served by the application
	// because the laptop was gone (ErrLaptopGone). They are counted in
	// Requests or Conns here too, and again in the application's.
	Fallbacks uint64
}

// Stats is a snapshot of the router's counters.
type Stats struct {
	// App counts traffic sent to the application.
	App Counters
	// Routes counts traffic sent to each current route, by intercept id.
	Routes map[string]Counters
}

type counters struct{ requests, conns, errors, fallbacks atomic.Uint64 }

func (c *counters) snapshot() Counters {
	return Counters{Requests: c.requests.Load(), Conns: c.conns.Load(), Errors: c.errors.Load(), Fallbacks: c.fallbacks.Load()}
}

// counter returns the live counters of one intercept, creating them. The
// application's counters have id "".
func (r *Router) counter(id string) *counters {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, ok := r.counters[id]
	if !ok {
		c = &counters{}
		r.counters[id] = c
	}
	return c
}

// Stats returns the counters since New, for the application and for each
// route currently set. A route's counters survive SetRoutes as long as a
// route with the same ID stays.
func (r *Router) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := Stats{Routes: make(map[string]Counters, len(r.counters))}
	for id, c := range r.counters {
		if id == "" {
			s.App = c.snapshot()
			continue
		}
		s.Routes[id] = c.snapshot()
	}
	return s
}

// Serve accepts connections on l and routes them until ctx is done or
// accepting fails for good. It then closes l, lets the requests in flight
// finish for up to Config.DrainTimeout, closes every connection it
// accepted, waits for all its goroutines to end, and returns nil if ctx
// ended it.
func (r *Router) Serve(ctx context.Context, l net.Listener) error {
	// conns ends every connection: when ctx does, or after the drain.
	conns, closeConns := context.WithCancel(context.WithoutCancel(ctx))
	defer closeConns()
	accepting, stopAccepting := context.WithCancel(ctx)
	defer stopAccepting()

	var track tracker
	hl := newHandoffListener(l.Addr())
	srv := r.newHTTPServer(conns, hl, &track)

	var wg sync.WaitGroup
	wg.Go(func() {
		// Serve returns when hl closes, which srv.Shutdown or srv.Close
		// below does.
		if err := srv.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("http server stopped", "err", err)
		}
	})
	wg.Go(func() {
		<-accepting.Done()
		l.Close()
	})

	err := r.acceptLoop(accepting, conns, l, hl, &track)
	stopAccepting()
	if err == nil && r.cfg.DrainTimeout > 0 {
		// ctx ended it: the requests in flight may finish.
		dctx, cancel := context.WithTimeout(conns, r.cfg.DrainTimeout)
		srv.Shutdown(dctx)
		cancel()
	}
	closeConns() // every connection left, through context.AfterFunc
	srv.Close()
	wg.Wait()
	track.closeAndWait()
	r.app.closeIdle()
	r.table.Load().closeIdle()
	r.stopTaps()
	return err
}

// acceptLoop accepts on l until ctx ends; each connection lives until
// conns does.
func (r *Router) acceptLoop(ctx, conns context.Context, l net.Listener, hl *handoffListener, track *tracker) error {
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !retryableAccept(err) {
				return fmt.Errorf("accept on %s: %w", l.Addr(), err)
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			r.log.Warn("accept failed; retrying", "addr", l.Addr().String(), "err", err, "backoff", backoff)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		if !track.add() {
			c.Close()
			return nil
		}
		go func() {
			defer track.done()
			r.handleConn(conns, c, hl, track)
		}()
	}
}

func retryableAccept(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.ECONNRESET} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// handleConn decides what one accepted connection is and sends it on its way.
func (r *Router) handleConn(ctx context.Context, c net.Conn, hl *handoffListener, track *tracker) {
	t := r.table.Load()
	switch {
	case t.global != nil:
		r.pipe(ctx, c, nil, t.global)
		return
	case len(t.routes) == 0 && len(t.taps) == 0 && !r.headerRoutesSeen.Load():
		r.pipe(ctx, c, nil, r.app)
		return
	}

	stop := context.AfterFunc(ctx, func() { c.Close() })
	p, prefix := r.sniffConn(c, r.cfg.PeekTimeout)
	var up net.Conn    // the application, when the client was silent
	var upFirst []byte // what the application said first
	if p == protoUnknown {
		start := time.Now()
		p, prefix, up, upFirst = r.firstSpeaker(ctx, c)
		// Rare (a pooled connection's first request, a server-first
		// protocol), and the place to look when one goes wrong.
		r.log.Info("silent connection decided", "client", c.RemoteAddr().String(), "proto", p.String(),
			"waited", (time.Since(start) + r.cfg.PeekTimeout).Round(time.Millisecond), "app_spoke", up != nil && len(upFirst) > 0)
	}
	if !stop() {
		if up != nil {
			up.Close()
		}
		return // ctx is done and c closed
	}
	log := r.log.With("client", c.RemoteAddr().String())
	if p == protoTLS && t.tls == nil {
		p = protoOther // no certificate: TLS goes raw to the app
	}
	switch p {
	case protoTLS:
		if up != nil {
			up.Close()
		}
		r.serveTLS(ctx, c, prefix, t.tls, hl, track)
	case protoUnknown:
		c.Close() // silent both ways until IdleTimeout, or the app is down
	case protoHTTP1, protoH2:
		log.Debug("serving HTTP", "proto", p)
		if up != nil {
			// Dialed to learn whether the app speaks first; it did not.
			// The app sees a connection close without a byte either way.
			up.Close()
		}
		if !track.add() {
			c.Close()
			return
		}
		hc := &handoffConn{Conn: c, prefix: prefix, closed: track.done}
		hc.stop = context.AfterFunc(ctx, func() { hc.Close() })
		if !hl.handoff(ctx, hc) {
			hc.Close()
		}
	default:
		log.Debug("not HTTP; passing through to the app", "first_bytes", len(prefix), "app_first_bytes", len(upFirst))
		if up == nil {
			r.pipe(ctx, c, prefix, r.app)
			return
		}
		r.splice(ctx, c, prefix, up, upFirst, r.app)
	}
}

// sniffConn reads the first bytes of c, within timeout, until sniff decides.
// It returns the protocol and the bytes read, which the next reader must see
// first; protoUnknown means the client sent nothing before the timeout.
func (r *Router) sniffConn(c net.Conn, timeout time.Duration) (proto, []byte) {
	return r.sniffMore(c, make([]byte, 0, maxSniff), timeout)
}

// sniffMore goes on reading c after the bytes in buf until sniff decides.
func (r *Router) sniffMore(c net.Conn, buf []byte, timeout time.Duration) (proto, []byte) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return protoOther, buf
	}
	defer c.SetReadDeadline(time.Time{})
	for {
		p := sniff(buf)
		if p != protoUnknown {
			return p, buf
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err != nil {
			if p := sniff(buf); p != protoUnknown {
				return p, buf
			}
			if len(buf) == 0 && errors.Is(err, os.ErrDeadlineExceeded) {
				return protoUnknown, buf // silent
			}
			// A short stream, a reset, or a client that stopped halfway
			// through something: the application deals with it as it
			// would have.
			return protoOther, buf
		}
	}
}

// aLongTimeAgo is a read deadline that unblocks a pending Read at once.
var aLongTimeAgo = time.Unix(1, 0)

// firstSpeaker decides a connection whose client has sent nothing for
// PeekTimeout. Two kinds of client do that: an HTTP client whose pool dialed
// a connection it has not needed yet (Go's http.Transport keeps the loser of
// its dial race idle; under load such a connection can wait many seconds for
// its first request), and the client of a protocol in which the server speaks
// first (MySQL, SMTP, ...). Only the application can tell them apart, so the
// router dials it and lets whichever side speaks first decide: the client's
// bytes are sniffed as usual, and the application's mean a raw splice. A
// timeout alone used to decide, and took pooled HTTP connections for the
// second kind: every request on them then bypassed the header routes.
//
// It returns the protocol (protoUnknown: give up, close c), the client's
// first bytes, and the application's connection with its first bytes unless
// it was closed. When the client turns out to speak HTTP the caller closes
// that connection: the application sees one that closed without a byte.
func (r *Router) firstSpeaker(ctx context.Context, c net.Conn) (proto, []byte, net.Conn, []byte) {
	up := r.dial(ctx, c, r.app)
	if up == nil {
		return protoUnknown, nil, nil, nil
	}
	stop := context.AfterFunc(ctx, func() { up.Close() })
	defer stop()

	type result struct {
		b   []byte
		err error
	}
	readOnce := func(conn net.Conn, ch chan<- result) {
		b := make([]byte, maxSniff)
		n, err := conn.Read(b)
		ch <- result{b[:n], err}
	}
	fromClient, fromApp := make(chan result, 1), make(chan result, 1)
	// Silent both ways for IdleTimeout: closed, as an idle HTTP connection
	// would be.
	c.SetReadDeadline(time.Now().Add(r.cfg.IdleTimeout))
	go readOnce(c, fromClient)
	go readOnce(up, fromApp)
	var cr, ar result
	select {
	case cr = <-fromClient:
		up.SetReadDeadline(aLongTimeAgo)
		ar = <-fromApp
	case ar = <-fromApp:
		c.SetReadDeadline(aLongTimeAgo)
		cr = <-fromClient
	}
	c.SetReadDeadline(time.Time{})
	up.SetReadDeadline(time.Time{})
	appSilent := len(ar.b) == 0 && errors.Is(ar.err, os.ErrDeadlineExceeded)
	clientSilent := len(cr.b) == 0 && errors.Is(cr.err, os.ErrDeadlineExceeded)
	switch {
	case !appSilent:
		// The application spoke (or hung up) first: a server-first
		// protocol, passed through as it is.
		return protoOther, cr.b, up, ar.b
	case clientSilent:
		up.Close()
		return protoUnknown, nil, nil, nil
	case len(cr.b) == 0:
		// The client hung up or half-closed without a byte: the
		// application sees the same.
		return protoOther, nil, up, nil
	}
	buf := make([]byte, len(cr.b), maxSniff)
	copy(buf, cr.b)
	p, buf := r.sniffMore(c, buf, r.cfg.ReadHeaderTimeout)
	if p == protoUnknown {
		p = protoOther
	}
	return p, buf, up, nil
}
