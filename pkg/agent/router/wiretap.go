package router

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kubectl-tele/kubectl-tele/pkg/match"
)

// Wiretaps: a route with Wiretap set does not take its matching requests.
// The application answers them as it would without the agent, and a copy of
// each (its method, URI, Host, headers and a body up to MaxCopyBody) goes to
// the route's laptop, whose answer is read and discarded.
//
// A copy never slows or fails the real request: the handler only tees the
// body as the application's transport reads it and, once the request is
// done, offers the copy to the wiretap's bounded queue without waiting.
// CopySenders goroutines per wiretap, stopped with the route, replay the
// queue to the laptop, each one copy at a time (so copies may reach the
// laptop in another order than the app got the requests). A copy that cannot be made or sent
// (a bigger body, a full queue, a laptop whose server is down) is dropped
// and counted.
const (
	// MaxCopyBody bounds the body a copy carries: a request with a bigger
	// one reaches the application untouched, and its copy is dropped.
	MaxCopyBody = 64 << 10
	// CopyQueue bounds the copies waiting for one wiretap's laptop.
	CopyQueue = 64
	// CopySenders is how many copies of one wiretap may be in flight to
	// its laptop at once: a copy takes a round trip through the manager
	// and the laptop's port-forward, which one sender alone would make
	// the bound on the copies sent per second.
	CopySenders = 4
	// copyTimeout bounds sending one copy and reading its answer.
	copyTimeout = 5 * time.Second
	// maxCopyAnswer bounds the laptop's answer read (to reuse its
	// connection); a longer one is cut.
	maxCopyAnswer = 1 << 20
)

// WiretapCounters count one wiretap's copies.
type WiretapCounters struct {
	// Sent counts copies the laptop answered.
	Sent uint64
	// Dropped counts copies not sent: the queue was full, the body over
	// MaxCopyBody or not read in full by the application, the laptop's
	// server did not answer, or the wiretap ended with copies queued.
	Dropped uint64
}

// tap is one wiretap's queue, sender and counters. It lives as long as
// routes with its ID do, across SetRoutes.
type tap struct {
	id            string
	dial          func(ctx context.Context) (net.Conn, error)
	timeout       time.Duration // bounds each dial
	queue         chan *wireCopy
	sent, dropped atomic.Uint64
	failing       atomic.Bool // the last send failed: log once per outage
	t1, t2        *http.Transport
	cancel        context.CancelFunc
	done          chan struct{}
}

// tapRoute is a wiretap in a table: its matcher (which SetRoutes may change)
// and its tap.
type tapRoute struct {
	match match.Matcher
	t     *tap
}

// wireCopy is a request to replay to a laptop.
type wireCopy struct {
	h2     bool
	method string
	url    string // path and query as the client sent them
	host   string
	header http.Header
	body   []byte
}

// hopHeaders are not forwarded to a copy's laptop: they were about the
// client's connection (RFC 9110, 7.6.1). TE: trailers is kept for gRPC.
// Expect is dropped too: the copy's body is at hand, and waiting for a
// 100 Continue would only delay it.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate", "Proxy-Authorization", "Transfer-Encoding", "Upgrade", "Http2-Settings", "Expect"}

// newTap starts the senders of a wiretap.
func (r *Router) newTap(rt Route) *tap {
	ctx, cancel := context.WithCancel(context.Background())
	t := &tap{id: rt.ID, dial: rt.Dial, timeout: r.cfg.LaptopDialTimeout, queue: make(chan *wireCopy, CopyQueue), cancel: cancel, done: make(chan struct{})}
	dial := func(ctx context.Context, _, _ string) (net.Conn, error) {
		dctx, cancel := context.WithTimeout(ctx, t.timeout)
		defer cancel()
		return t.dial(dctx)
	}
	t.t1 = r.newTransport(dial, false)
	t.t2 = r.newTransport(dial, true)
	var wg sync.WaitGroup
	for range CopySenders {
		wg.Go(func() { r.sendCopies(ctx, t) })
	}
	go func() {
		wg.Wait()
		close(t.done)
	}()
	return t
}

// stop ends the tap's senders and waits for them; queued copies are
// dropped.
func (t *tap) stop() {
	t.cancel()
	<-t.done
	t.t1.CloseIdleConnections()
	t.t2.CloseIdleConnections()
}

func (t *tap) counters() WiretapCounters {
	return WiretapCounters{Sent: t.sent.Load(), Dropped: t.dropped.Load()}
}

// count adds one to c, one of t's counters.
func (t *tap) count(c *atomic.Uint64) {
	c.Add(1)
	countersChanged()
}

// countersChanged is called after a tap counted a copy; tests wait on it.
var countersChanged = func() {}

// offer queues c without waiting: a full queue drops it.
func (t *tap) offer(c *wireCopy) {
	select {
	case t.queue <- c:
	default:
		t.count(&t.dropped)
	}
}

// sendCopies replays t's queue to its laptop until ctx ends.
func (r *Router) sendCopies(ctx context.Context, t *tap) {
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case <-t.queue:
					t.count(&t.dropped)
				default:
					return
				}
			}
		case c := <-t.queue:
			if err := t.send(ctx, c); err != nil {
				t.count(&t.dropped)
				if ctx.Err() != nil {
					continue
				}
				if !t.failing.Swap(true) {
					// A url.Error names the URL, whose query may carry a
					// client's secrets: log only what went wrong.
					var uerr *url.Error
					if errors.As(err, &uerr) {
						err = uerr.Err
					}
					r.log.Warn("wiretap: the laptop did not take a copy; copies are dropped until it does", "intercept", t.id, "err", err)
				}
				continue
			}
			t.count(&t.sent)
			if t.failing.Swap(false) {
				r.log.Info("wiretap: the laptop takes copies again", "intercept", t.id)
			}
		}
	}
}

// send replays one copy and discards the answer.
func (t *tap) send(ctx context.Context, c *wireCopy) error {
	ctx, cancel := context.WithTimeout(ctx, copyTimeout)
	defer cancel()
	uri := c.url
	if uri == "*" {
		uri = "/"
	}
	req, err := http.NewRequestWithContext(ctx, c.method, "http://laptop.invalid"+uri, bytes.NewReader(c.body))
	if err != nil {
		return err
	}
	if c.url == "*" { // OPTIONS *: the asterisk-form, which a URL does not spell
		req.URL.Path, req.URL.Opaque = "", "*"
	}
	req.Host = c.host
	req.Header = c.header
	req.ContentLength = int64(len(c.body))
	if len(c.body) == 0 {
		req.Body = http.NoBody
	}
	rt := t.t1
	if c.h2 {
		rt = t.t2
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, maxCopyAnswer))
	return err
}

// setTaps makes the router's taps those of routes (by ID, keeping the
// queue and counters of each that stays), stops the others' senders, and
// returns the table's wiretap entries.
func (r *Router) setTaps(routes []Route) []tapRoute {
	var out []tapRoute
	var stopped []*tap
	r.mu.Lock()
	keep := map[string]bool{}
	for _, rt := range routes {
		t := r.taps[rt.ID]
		if t == nil && !r.closed {
			t = r.newTap(rt)
			r.taps[rt.ID] = t
		}
		if t != nil {
			keep[rt.ID] = true
			out = append(out, tapRoute{match: rt.Match, t: t})
		}
	}
	for id, t := range r.taps {
		if !keep[id] {
			delete(r.taps, id)
			stopped = append(stopped, t)
		}
	}
	r.mu.Unlock()
	for _, t := range stopped {
		t.stop()
	}
	return out
}

// stopTaps ends every tap; later SetRoutes start none (Serve has ended).
func (r *Router) stopTaps() {
	r.mu.Lock()
	r.closed = true
	taps := r.taps
	r.taps = map[string]*tap{}
	r.mu.Unlock()
	for _, t := range taps {
		t.stop()
	}
}

// WiretapStats returns the counters of each current wiretap, by route ID.
func (r *Router) WiretapStats() map[string]WiretapCounters {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]WiretapCounters, len(r.taps))
	for id, t := range r.taps {
		out[id] = t.counters()
	}
	return out
}

// afterAnswer runs queue once the answer to req is on its way to the
// client: waking a sender before would let it compete with the rest of
// the answer for the CPU (seen in the e2e test's p99). The answer is
// complete when the handler returns, so the flush changes nothing a client
// sees but when the bytes leave (an HTTP/2 answer may end with an empty
// DATA frame). A request that ends in a panic (the client went away) is
// not flushed; its copies are still queued.
func afterAnswer(w http.ResponseWriter, req *http.Request, queue func()) {
	if req.Context().Err() == nil {
		_ = http.NewResponseController(w).Flush()
	}
	queue()
}

// tee prepares copies of req for the wiretaps whose matcher accepts it. It
// may wrap req.Body to keep what the application's transport reads; the
// function it returns, called once the request has been served, queues the
// copies (or drops them when the body was not kept whole). It returns nil
// when no wiretap wants a copy.
func (t *table) tee(req *http.Request) func() {
	var hits []*tap
	for i := range t.taps {
		if t.taps[i].match.MatchRequest(req) {
			hits = append(hits, t.taps[i].t)
		}
	}
	if len(hits) == 0 {
		return nil
	}
	drop := func() {
		for _, h := range hits {
			h.count(&h.dropped)
		}
	}
	if req.ContentLength > MaxCopyBody {
		drop()
		return nil
	}
	h := req.Header.Clone()
	for _, k := range hopHeaders {
		h.Del(k)
	}
	if te := h.Get("Te"); te != "" && te != "trailers" {
		h.Del("Te")
	}
	// Over TLS the client chose HTTP/2 by ALPN with the agent, not with the
	// laptop's cleartext server, which need not speak h2c: copies go as
	// the takers' requests go (see newTLSProxies), gRPC alone over h2c.
	h2 := req.ProtoMajor == 2 && (!tlsIn(req) || isGRPC(req))
	c := &wireCopy{h2: h2, method: req.Method, url: req.URL.RequestURI(), host: req.Host, header: h}
	queue := func() {
		for _, h := range hits {
			h.offer(c)
		}
	}
	if req.Body == nil || req.Body == http.NoBody || req.ContentLength == 0 {
		return queue
	}
	body := &teeBody{rc: req.Body, want: req.ContentLength}
	req.Body = body
	return func() {
		b, ok := body.kept()
		if !ok {
			drop()
			return
		}
		c.body = b
		queue()
	}
}

// teeBody keeps a copy of what is read through it, up to MaxCopyBody. The
// application's transport may still read it after the handler returns
// (it writes the body on its own goroutine), hence the lock.
type teeBody struct {
	rc   io.ReadCloser
	mu   sync.Mutex
	buf  []byte
	want int64 // the request's Content-Length; -1 unknown
	over bool  // more than MaxCopyBody: buf is dropped
	eof  bool
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.mu.Lock()
	if !b.over && n > 0 {
		if len(b.buf)+n > MaxCopyBody {
			b.over, b.buf = true, nil
		} else {
			b.buf = append(b.buf, p[:n]...)
		}
	}
	if errors.Is(err, io.EOF) {
		b.eof = true
	}
	b.mu.Unlock()
	return n, err
}

func (b *teeBody) Close() error { return b.rc.Close() }

// kept returns the whole body, and false if it was not read to its end
// or was over MaxCopyBody.
func (b *teeBody) kept() ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.over || !b.eof && int64(len(b.buf)) != b.want {
		return nil, false
	}
	return b.buf, true
}
