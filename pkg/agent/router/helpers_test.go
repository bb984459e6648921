package router

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubectl-tele/kubectl-tele/pkg/match"
)

// countingListener counts the connections the router accepted, to check that
// several requests shared one.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

type testRouter struct {
	*Router
	addr   string
	ln     *countingListener
	cancel context.CancelFunc
	done   chan error
}

func testLogger(t testing.TB) *slog.Logger {
	if _, ok := t.(*testing.B); ok {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startRouter runs a Router on 127.0.0.1:0 until the test ends, and checks
// that Serve then returns nil promptly.
func startRouter(t testing.TB, cfg Config, routes ...Route) *testRouter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	tr := &testRouter{
		Router: New(cfg),
		addr:   ln.Addr().String(),
		ln:     &countingListener{Listener: ln},
		done:   make(chan error, 1),
	}
	tr.SetRoutes(routes)
	ctx, cancel := context.WithCancel(context.Background())
	tr.cancel = cancel
	go func() { tr.done <- tr.Serve(ctx, tr.ln) }()
	t.Cleanup(func() { tr.stop(t) })
	return tr
}

func (tr *testRouter) stop(t testing.TB) {
	t.Helper()
	tr.cancel()
	select {
	case err, ok := <-tr.done:
		if ok && err != nil {
			t.Errorf("Serve returned %v, want nil after cancel", err)
		}
		if ok {
			close(tr.done)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("Serve did not return within 5s of cancel")
	}
}

func (tr *testRouter) url(path string) string { return "http://" + tr.addr + path }

// backend is an "app" or a "laptop": an HTTP/1.1 + h2c server that says who
// it is, plus a few endpoints for streaming, trailers, upgrades and slow
// requests.
type backend struct {
	name    string
	srv     *httptest.Server
	started chan string   // /slow requests announce themselves here
	release chan struct{} // and wait for this
	conns   atomic.Int64
	dialed  chan struct{} // one per connection accepted, while it has room
}

func newBackend(t testing.TB, name string) *backend {
	t.Helper()
	b := &backend{name: name, started: make(chan string, 16), release: make(chan struct{}), dialed: make(chan struct{}, 64)}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(b.serveHTTP))
	b.srv.Config.Protocols = h1h2c()
	b.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.conns.Add(1)
			select {
			case b.dialed <- struct{}{}:
			default:
			}
		}
	}
	b.srv.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelDebug)
	b.srv.Start()
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) addr() string { return b.srv.Listener.Addr().String() }

func (b *backend) route(id string, specs ...string) Route {
	return Route{ID: id, Match: match.MustParse(specs...), Dial: dialTo(b.addr())}
}

func dialTo(addr string) func(context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
}

func (b *backend) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Served-By", b.name)
	switch r.URL.Path {
	case "/slow":
		b.started <- b.name
		select {
		case <-b.release:
		case <-r.Context().Done():
			return
		}
	case "/upgrade":
		b.serveUpgrade(w, r)
		return
	case "/stream":
		b.serveStream(w, r)
		return
	}
	fmt.Fprintf(w, "%s %s host=%s xff=%q query=%s", b.name, r.Proto, r.Host, r.Header.Values("X-Forwarded-For"), r.URL.RawQuery)
}

// serveStream echoes each body line back as soon as it arrives, prefixed
// with the backend's name, and ends with trailers, as a gRPC server does.
func (b *backend) serveStream(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Trailer", "X-Lines")
	w.Header().Set("Content-Type", "application/x-lines")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	rc.EnableFullDuplex()
	rc.Flush()
	sc := bufio.NewScanner(r.Body)
	n := 0
	for sc.Scan() {
		n++
		fmt.Fprintf(w, "%s:%s\n", b.name, sc.Text())
		rc.Flush()
	}
	w.Header().Set("X-Lines", fmt.Sprint(n))
	w.Header().Set(http.TrailerPrefix+"X-Status", "0")
}

// serveUpgrade switches to a line echo protocol on "Upgrade: echo".
func (b *backend) serveUpgrade(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "echo") {
		http.Error(w, "want Upgrade: echo", http.StatusBadRequest)
		return
	}
	c, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	defer c.Close()
	fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\nX-Served-By: %s\r\n\r\n", b.name)
	brw.Flush()
	for {
		line, err := brw.ReadString('\n')
		if err != nil {
			return
		}
		fmt.Fprintf(brw, "%s:%s", b.name, line)
		brw.Flush()
	}
}

// serveTCP runs handle for every connection to a loopback listener, then
// closes the connection; it stops at cleanup. It returns the address.
func serveTCP(t testing.TB, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// startEcho runs a raw TCP server that echoes what it reads and half-closes
// on EOF. With greeting set it speaks first, like MySQL or SMTP.
func startEcho(t testing.TB, greeting string) string {
	t.Helper()
	return serveTCP(t, func(c net.Conn) {
		io.WriteString(c, greeting)
		io.Copy(c, c)
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, c)
	})
}

func h1h2c() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return p
}

// h1Client uses one connection at most, so keep-alive reuse is visible.
func h1Client(t testing.TB) *http.Client {
	tr := &http.Transport{MaxConnsPerHost: 1, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func h2cClient(t testing.TB) *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p, MaxConnsPerHost: 1, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// get sends one request with the given headers (name, value, ...) and
// returns the status and body.
func get(t testing.TB, c *http.Client, url string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "Host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s %q: %v", url, hdr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s %q: read body: %v", url, hdr, err)
	}
	return resp.StatusCode, string(body)
}

// rawExchange dials addr, sends msg, half-closes and returns all it reads.
func rawExchange(t testing.TB, addr, msg string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read from %s: %v", addr, err)
	}
	return string(b)
}
