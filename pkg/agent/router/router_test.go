package router

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kubectl-tele/kubectl-tele/pkg/match"
)

func TestPassThroughWithoutRoutes(t *testing.T) {
	t.Run("http", func(t *testing.T) {
		app := newBackend(t, "app")
		r := startRouter(t, Config{AppAddr: app.addr()})
		c := h1Client(t)
		for range 3 {
			code, body := get(t, c, r.url("/"), "X-Dev", "alice")
			if code != http.StatusOK || !strings.HasPrefix(body, "app HTTP/1.1") {
				t.Fatalf("got %d %q, want 200 from app", code, body)
			}
		}
		s := r.Stats()
		if s.App.Conns != 1 || s.App.Requests != 0 {
			t.Errorf("stats %+v: want one raw connection and no proxied request", s.App)
		}
	})
	t.Run("echo protocol with half-close", func(t *testing.T) {
		echo := startEcho(t, "")
		r := startRouter(t, Config{AppAddr: echo})
		msg := strings.Repeat("not http\x00\x01", 10000)
		if got := rawExchange(t, r.addr, msg); got != msg {
			t.Fatalf("echo through router returned %d bytes, want %d", len(got), len(msg))
		}
	})
}

func TestNonHTTPWithHeaderRoutes(t *testing.T) {
	laptop := newBackend(t, "alice")
	tests := []struct {
		name     string
		greeting string
		msg      string
	}{
		{name: "binary protocol", msg: "\x16\x03\x01 hello"},
		{name: "text that is not an HTTP request line", msg: "SET key value\r\nGET key\r\n"},
		{name: "server speaks first", greeting: "220 smtp ready\r\n", msg: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			echo := startEcho(t, tt.greeting)
			r := startRouter(t, Config{AppAddr: echo, PeekTimeout: 200 * time.Millisecond}, laptop.route("alice", "x-dev=alice"))
			c, err := net.Dial("tcp", r.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, tt.msg)
			want := tt.greeting + tt.msg
			got := make([]byte, len(want))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
				t.Fatalf("read %q, %v; want %q", got, err, want)
			}
		})
	}
}

func TestHeaderRoutesHTTP1KeepAlive(t *testing.T) {
	app, alice, bob := newBackend(t, "app"), newBackend(t, "alice"), newBackend(t, "bob")
	r := startRouter(t, Config{AppAddr: app.addr()},
		alice.route("alice", "x-dev=alice"),
		bob.route("bob", "x-dev~=bob|robert", "x-team=b"),
	)
	c := h1Client(t)
	tests := []struct {
		name string
		path string
		hdr  []string
		want string
	}{
		{"alice", "/", []string{"X-Dev", "alice"}, "alice HTTP/1.1 host=my-service:8080 xff=[] query="},
		{"bob needs both terms", "/", []string{"x-dev", "robert"}, "app HTTP/1.1"},
		{"bob", "/", []string{"x-dev", "robert", "X-Team", "b"}, "bob HTTP/1.1"},
		{"no header", "/", nil, "app HTTP/1.1 host=my-service:8080 xff=[] query="},
		{"other developer", "/", []string{"x-dev", "carol"}, "app HTTP/1.1"},
		{"value is exact", "/", []string{"x-dev", "alice2"}, "app HTTP/1.1"},
		{"client X-Forwarded-For kept, none added", "/", []string{"X-Forwarded-For", "10.0.0.1", "x-dev", "alice"}, `alice HTTP/1.1 host=my-service:8080 xff=["10.0.0.1"]`},
		{"query kept byte for byte", "/q?a=1;b=2&c=%zz", []string{"x-dev", "alice"}, "alice HTTP/1.1 host=my-service:8080 xff=[] query=a=1;b=2&c=%zz"},
		{"Upgrade: h2c answered in HTTP/1.1", "/", []string{"Connection", "Upgrade, HTTP2-Settings", "Upgrade", "h2c", "HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA", "x-dev", "alice"}, "alice HTTP/1.1"},
		{"alice again", "/", []string{"x-dev", "alice"}, "alice HTTP/1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := get(t, c, r.url(tt.path), append([]string{"Host", "my-service:8080"}, tt.hdr...)...)
			if code != http.StatusOK || !strings.HasPrefix(body, tt.want) {
				t.Errorf("got %d %q, want 200 %q...", code, body, tt.want)
			}
		})
	}
	if n := r.ln.n.Load(); n != 1 {
		t.Errorf("router accepted %d connections, want all requests on 1", n)
	}
	s := r.Stats()
	if s.Routes["alice"].Requests != 5 || s.Routes["bob"].Requests != 1 || s.App.Requests != 4 {
		t.Errorf("stats = %+v, want alice 5, bob 1, app 4 requests", s)
	}
}

func TestHeaderRoutesH2C(t *testing.T) {
	app, alice, bob := newBackend(t, "app"), newBackend(t, "alice"), newBackend(t, "bob")
	r := startRouter(t, Config{AppAddr: app.addr()}, alice.route("alice", "x-dev=alice"), bob.route("bob", "x-dev=bob"))
	c := h2cClient(t)

	var wg sync.WaitGroup
	errs := make(chan error, 60)
	for i := range 60 {
		dev := []string{"alice", "bob", "carol"}[i%3]
		want := map[string]string{"alice": "alice", "bob": "bob", "carol": "app"}[dev]
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodGet, r.url("/"), nil)
			req.Header.Set("X-Dev", dev)
			resp, err := c.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.ProtoMajor != 2 || !strings.HasPrefix(string(body), want+" HTTP/2.0") {
				errs <- fmt.Errorf("x-dev %s: got %s %q, want HTTP/2 from %s over HTTP/2", dev, resp.Proto, body, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := r.ln.n.Load(); n != 1 {
		t.Errorf("router accepted %d connections, want all streams on 1", n)
	}
	s := r.Stats()
	if s.Routes["alice"].Requests != 20 || s.Routes["bob"].Requests != 20 || s.App.Requests != 20 {
		t.Errorf("stats = %+v, want 20 requests each", s)
	}
}

// TestStreamingTrailers runs a full-duplex, gRPC-shaped exchange: lines go up
// while echoes come back, and the answer ends with trailers.
func TestStreamingTrailers(t *testing.T) {
	app, alice := newBackend(t, "app"), newBackend(t, "alice")
	r := startRouter(t, Config{AppAddr: app.addr()}, alice.route("alice", "x-dev=alice"))
	for _, tt := range []struct {
		name   string
		client *http.Client
		dev    string
		want   string
	}{
		{"h2c to laptop", h2cClient(t), "alice", "alice"},
		{"h2c to app", h2cClient(t), "bob", "app"},
		{"http1 to laptop", h1Client(t), "alice", "alice"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pr, pw := io.Pipe()
			req, _ := http.NewRequest(http.MethodPost, r.url("/stream"), pr)
			req.Header.Set("X-Dev", tt.dev)
			req.Header.Set("Te", "trailers")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req = req.WithContext(ctx)

			respc := make(chan *http.Response, 1)
			errc := make(chan error, 1)
			go func() {
				resp, err := tt.client.Do(req)
				if err != nil {
					errc <- err
					return
				}
				respc <- resp
			}()
			// One line must make it there and back before the next is sent:
			// that is what a bidirectional gRPC stream needs.
			if _, err := io.WriteString(pw, "one\n"); err != nil {
				t.Fatal(err)
			}
			var resp *http.Response
			select {
			case resp = <-respc:
			case err := <-errc:
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			for i, line := range []string{"one", "two", "three"} {
				if i > 0 {
					io.WriteString(pw, line+"\n")
				}
				got, err := br.ReadString('\n')
				if want := tt.want + ":" + line + "\n"; err != nil || got != want {
					t.Fatalf("echo %d = %q, %v; want %q", i, got, err, want)
				}
			}
			pw.Close()
			if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
				t.Fatalf("after echoes: %q, %v", rest, err)
			}
			if got := resp.Trailer.Get("X-Lines"); got != "3" {
				t.Errorf("trailer X-Lines = %q, want 3 (trailers %v)", got, resp.Trailer)
			}
			if got := resp.Trailer.Get("X-Status"); got != "0" {
				t.Errorf("undeclared trailer X-Status = %q, want 0 (trailers %v)", got, resp.Trailer)
			}
		})
	}
}

func TestUpgradeSpliced(t *testing.T) {
	app, alice := newBackend(t, "app"), newBackend(t, "alice")
	r := startRouter(t, Config{AppAddr: app.addr()}, alice.route("alice", "x-dev=alice"))
	for _, tt := range []struct{ dev, want string }{{"alice", "alice"}, {"bob", "app"}} {
		t.Run(tt.dev, func(t *testing.T) {
			c, err := net.Dial("tcp", r.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(c, "GET /upgrade HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade\r\nUpgrade: echo\r\nX-Dev: %s\r\n\r\n", tt.dev)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("X-Served-By") != tt.want {
				t.Fatalf("got %s from %q, want 101 from %s", resp.Status, resp.Header.Get("X-Served-By"), tt.want)
			}
			for _, line := range []string{"ping", "pong"} {
				fmt.Fprintf(c, "%s\n", line)
				got, err := br.ReadString('\n')
				if want := tt.want + ":" + line + "\n"; err != nil || got != want {
					t.Fatalf("echo = %q, %v; want %q", got, err, want)
				}
			}
		})
	}
}

func TestGlobalRouteTakesRawTCP(t *testing.T) {
	app := newBackend(t, "app")
	laptopEcho := startEcho(t, "laptop\n")
	r := startRouter(t, Config{AppAddr: app.addr()}, Route{ID: "alice", Dial: dialTo(laptopEcho)})
	if got, want := rawExchange(t, r.addr, "GET / HTTP/1.1\r\n\r\n"), "laptop\nGET / HTTP/1.1\r\n\r\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := rawExchange(t, r.addr, "\x00binary"), "laptop\n\x00binary"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if s := r.Stats(); s.Routes["alice"].Conns != 2 || s.App.Conns != 0 {
		t.Errorf("stats = %+v, want 2 raw connections to alice, none to the app", s)
	}
}

func TestBadGateway(t *testing.T) {
	app := newBackend(t, "app")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	tests := []struct {
		name    string
		appAddr string
		dial    func(context.Context) (net.Conn, error)
		dev     string
		client  *http.Client
		want    string
		within  time.Duration
	}{
		{"laptop refuses, http1", app.addr(), dialTo(closed), "alice", h1Client(t), "kubectl-tele: intercept alice: nothing answers on the laptop's local port", time.Second},
		{"laptop refuses, h2c", app.addr(), dialTo(closed), "alice", h2cClient(t), "kubectl-tele: intercept alice: nothing answers on the laptop's local port", time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := startRouter(t, Config{AppAddr: tt.appAddr, DialTimeout: time.Second}, Route{ID: "alice", Match: match.MustParse("x-dev=alice"), Dial: tt.dial})
			start := time.Now()
			code, body := get(t, tt.client, r.url("/"), "X-Dev", tt.dev)
			if d := time.Since(start); d > tt.within {
				t.Errorf("answer took %v, want under %v", d, tt.within)
			}
			if code != http.StatusBadGateway || !strings.HasPrefix(body, tt.want) {
				t.Errorf("got %d %q, want 502 %q", code, body, tt.want)
			}
			s := r.Stats()
			if s.Routes["alice"].Errors+s.App.Errors != 1 {
				t.Errorf("stats = %+v, want 1 error", s)
			}
		})
	}
}

// TestAppRefuses: when the app has closed its port and its connections
// (its pod is terminating), a request it would have taken ends unanswered,
// as the app's own closing would have ended it, and not with a 502: a
// client whose keep-alive connection that was retries the request on a new
// one, which through a Service reaches another pod. Whether the agent's
// pooled connection to the app is found closed before or while it is used,
// the outcome is the same.
func TestAppRefuses(t *testing.T) {
	for _, proto := range []string{"http1", "h2c"} {
		t.Run(proto, func(t *testing.T) {
			app := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "app") }))
			app.Config.Protocols = new(http.Protocols)
			app.Config.Protocols.SetHTTP1(true)
			app.Config.Protocols.SetUnencryptedHTTP2(true)
			app.Start()
			// A route, so that the agent reads the requests: the app's are
			// those that do not match it.
			laptop := newBackend(t, "alice")
			r := startRouter(t, Config{AppAddr: app.Listener.Addr().String(), DialTimeout: time.Second}, laptop.route("alice", "x-dev=alice"))
			c := h1Client(t)
			if proto == "h2c" {
				c = h2cClient(t)
			}
			if code, body := get(t, c, r.url("/")); code != http.StatusOK || body != "app" {
				t.Fatalf("before the app stopped: %d %q", code, body)
			}
			app.Close() // its listener and every connection: the pod's app is gone
			resp, err := c.Get(r.url("/"))
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.Fatalf("after the app stopped: got %d %q, want the connection ended unanswered", resp.StatusCode, body)
			}
			want := uint64(1)
			if proto == "http1" {
				// The reused connection ended before any answer, so the
				// client retried once, on a new connection.
				want = 2
			}
			if s := r.Stats(); s.App.Errors != want {
				t.Errorf("app errors = %d, want %d (err %v)", s.App.Errors, want, err)
			}
		})
	}
}

func TestSetRoutesMidFlight(t *testing.T) {
	app, alice, bob := newBackend(t, "app"), newBackend(t, "alice"), newBackend(t, "bob")

	t.Run("http keep-alive re-routes per request", func(t *testing.T) {
		r := startRouter(t, Config{AppAddr: app.addr()}, alice.route("alice", "x-dev=alice"))
		c := h1Client(t)
		done := make(chan string, 1)
		go func() {
			_, body := get(t, c, r.url("/slow"), "X-Dev", "alice")
			done <- body
		}()
		if who := <-alice.started; who != "alice" {
			t.Fatalf("slow request started on %s", who)
		}
		r.SetRoutes([]Route{bob.route("bob", "x-dev=alice")})
		alice.release <- struct{}{}
		if body := <-done; !strings.HasPrefix(body, "alice ") {
			t.Fatalf("in-flight request answered %q, want it to finish on alice", body)
		}
		if _, body := get(t, c, r.url("/"), "X-Dev", "alice"); !strings.HasPrefix(body, "bob ") {
			t.Fatalf("next request answered %q, want bob's under the new routes", body)
		}
		r.SetRoutes(nil)
		if _, body := get(t, c, r.url("/"), "X-Dev", "alice"); !strings.HasPrefix(body, "app ") {
			t.Fatalf("request after removing routes answered %q, want app", body)
		}
		if n := r.ln.n.Load(); n != 1 {
			t.Errorf("router accepted %d connections, want 1", n)
		}
	})

	t.Run("raw pass-through survives new routes", func(t *testing.T) {
		r := startRouter(t, Config{AppAddr: app.addr()})
		c := h1Client(t)
		done := make(chan string, 1)
		go func() {
			_, body := get(t, c, r.url("/slow"), "X-Dev", "alice")
			done <- body
		}()
		<-app.started
		r.SetRoutes([]Route{alice.route("alice", "x-dev=alice")})
		app.release <- struct{}{}
		if body := <-done; !strings.HasPrefix(body, "app ") {
			t.Fatalf("in-flight request answered %q, want it to finish on app", body)
		}
		// The client's connection was spliced raw before the routes came;
		// it stays a splice to the app. A new connection is routed.
		c.CloseIdleConnections()
		if _, body := get(t, c, r.url("/"), "X-Dev", "alice"); !strings.HasPrefix(body, "alice ") {
			t.Fatalf("request on a new connection answered %q, want alice", body)
		}
	})
}

func TestServeStopsAndWaits(t *testing.T) {
	app, alice := newBackend(t, "app"), newBackend(t, "alice")
	// Nothing the router started outlives it (the backends' are older).
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	r := startRouter(t, Config{AppAddr: app.addr()}, alice.route("alice", "x-dev=alice"))
	h1, h2 := h1Client(t), h2cClient(t)
	get(t, h1, r.url("/"), "X-Dev", "alice") // an idle keep-alive connection
	get(t, h2, r.url("/"), "X-Dev", "alice") // an idle h2c connection

	// A hijacked, spliced upgrade.
	up, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	fmt.Fprintf(up, "GET /upgrade HTTP/1.1\r\nHost: svc\r\nConnection: Upgrade\r\nUpgrade: echo\r\nX-Dev: alice\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(up), nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	// A slow request in flight.
	slowErr := make(chan error, 1)
	slowClient := h1Client(t)
	go func() {
		resp, err := slowClient.Get(r.url("/slow"))
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		slowErr <- err
	}()
	<-app.started
	// A connection still being sniffed.
	sniffing, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer sniffing.Close()

	start := time.Now()
	r.stop(t)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Serve took %v to return after cancel", d)
	}
	if err := <-slowErr; err == nil {
		t.Errorf("slow request succeeded after the router stopped")
	}
	// The router closed the client connections: reads end.
	up.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := up.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("upgraded connection still open after stop: %v", err)
	}
	h1.CloseIdleConnections()
	h2.CloseIdleConnections()
}

func TestSniff(t *testing.T) {
	long := "GET /" + strings.Repeat("a", maxSniff)
	tests := []struct {
		in   string
		want proto
	}{
		{"", protoUnknown},
		{"G", protoUnknown},
		{"GET", protoUnknown},
		{"GET ", protoUnknown},
		{"GET /index.html HTTP/1.1", protoUnknown},
		{"GET /index.html HTTP/1.1\r\n", protoHTTP1},
		{"GET / HTTP/1.0\n", protoHTTP1},
		{"PROPFIND /x HTTP/1.1\r\nHost: a\r\n\r\n", protoHTTP1},
		{"CONNECT example.com:443 HTTP/1.1\r\n", protoHTTP1},
		{"OPTIONS * HTTP/1.1\r\n", protoHTTP1},
		{"GET http://a/ HTTP/1.1\r\n", protoHTTP1},
		{"GET / HTTP/2.0\r\n", protoOther},
		{"GET /\r\n", protoOther}, // HTTP/0.9 is not supported
		{"SET key value\r\n", protoOther},
		{"GET \x00", protoOther},
		{"GET / HTTP/1.1\r", protoUnknown},
		{"GET /\x00 HTTP/1.1", protoOther},
		{"GET /a\rb", protoOther},
		{" GET / HTTP/1.1\r\n", protoOther},
		{"\x16\x03\x01\x02\x00\x01", protoTLS}, // TLS ClientHello
		{"\x16\x03\x01\x02\x00", protoUnknown},
		{"\x16\x03\x01\x02\x00\x02", protoOther}, // a ServerHello
		{strings.Repeat("A", maxMethodLen+1), protoOther},
		{"P", protoUnknown},
		{"PRI * HTTP/2.0\r\n", protoUnknown},
		{h2Preface, protoH2},
		{h2Preface + "\x00\x00\x12\x04", protoH2},
		{"PRI * HTTP/2.0\r\n\r\nXX", protoOther},
		{"PRI / HTTP/1.1\r\n", protoHTTP1},
		{long[:maxSniff-1], protoUnknown},
		{long[:maxSniff], protoHTTP1},
	}
	for _, tt := range tests {
		if got := sniff([]byte(tt.in)); got != tt.want {
			t.Errorf("sniff(%.40q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// FuzzSniff checks that sniff never changes its mind as more bytes arrive and
// always decides by maxSniff bytes, since the router acts on the first
// answer that is not protoUnknown.
func FuzzSniff(f *testing.F) {
	for _, s := range []string{"GET / HTTP/1.1\r\n", h2Preface, "SET a b\r\n", "\x16\x03\x01", "PRI * HTTP/1.1\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		decided := protoUnknown
		for k := 0; k <= len(b); k++ {
			p := sniff(b[:k])
			if decided != protoUnknown && p != decided {
				t.Fatalf("sniff(%q) = %v but a prefix was %v", b[:k], p, decided)
			}
			if p == protoUnknown && k >= maxSniff {
				t.Fatalf("sniff undecided after %d bytes", k)
			}
			decided = p
			if k > maxSniff+1 {
				break
			}
		}
	})
}

// A pooled HTTP connection can stay silent long past PeekTimeout before its
// first request (seen at 1,000 requests/s: Go's Transport parks the loser of
// a dial race). Its requests must still be routed on their headers.
func TestSilentHTTPClientStillRouted(t *testing.T) {
	app, alice := newBackend(t, "app"), newBackend(t, "alice")
	r := startRouter(t, Config{AppAddr: app.addr(), PeekTimeout: 100 * time.Millisecond}, alice.route("alice", "x-dev=alice"))
	c, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// Silent past PeekTimeout: the router dials the app to see who speaks.
	select {
	case <-app.dialed:
	case <-time.After(10 * time.Second):
		t.Fatal("the router did not dial the app for a silent client")
	}
	br := bufio.NewReader(c)
	for _, tt := range []struct{ hdr, want string }{
		{"x-dev: alice\r\n", "alice"},
		{"", "app"},
		{"x-dev: alice\r\n", "alice"},
	} {
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: my-service\r\n"+tt.hdr+"\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasPrefix(string(body), tt.want+" ") {
			t.Errorf("header %q: served by %q, want %s", tt.hdr, body, tt.want)
		}
	}
}

// A server-first application that hangs up on a silent client: the client
// sees the hang-up, as it would without the agent.
func TestSilentClientAppHangsUp(t *testing.T) {
	app := serveTCP(t, func(net.Conn) {}) // hangs up at once
	laptop := newBackend(t, "alice")
	r := startRouter(t, Config{AppAddr: app, PeekTimeout: 100 * time.Millisecond}, laptop.route("alice", "x-dev=alice"))
	c, err := net.Dial("tcp", r.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %d bytes, %v; want the app's hang-up", n, err)
	}
}

// Once a port has had header routes, a connection opened while it has none
// is served request by request: when the next intercept comes, its requests
// follow the new routes instead of staying on the app for the connection's
// life.
func TestConnectionOpenedBetweenInterceptsFollowsNewRoutes(t *testing.T) {
	app, alice := newBackend(t, "app"), newBackend(t, "alice")
	r := startRouter(t, Config{AppAddr: app.addr()}, alice.route("alice", "x-dev=alice"))
	r.SetRoutes(nil) // the first intercept left
	c := h1Client(t)
	if code, body := get(t, c, r.url("/"), "x-dev", "alice"); code != http.StatusOK || !strings.HasPrefix(body, "app ") {
		t.Fatalf("with no routes: %d %q, want the app", code, body)
	}
	r.SetRoutes([]Route{alice.route("alice", "x-dev=alice")}) // the next intercept
	if code, body := get(t, c, r.url("/"), "x-dev", "alice"); code != http.StatusOK || !strings.HasPrefix(body, "alice ") {
		t.Errorf("on the same connection after the routes came back: %d %q, want alice", code, body)
	}
	if n := r.ln.n.Load(); n != 1 {
		t.Errorf("router accepted %d connections, want both requests on 1", n)
	}
}

// A port that never had header routes stays a raw pass-through.
func TestNoRoutesEverIsRaw(t *testing.T) {
	echo := startEcho(t, "220 ready\r\n")
	r := startRouter(t, Config{AppAddr: echo, PeekTimeout: 5 * time.Second})
	start := time.Now()
	if got := rawExchange(t, r.addr, "hello"); got != "220 ready\r\nhello" {
		t.Fatalf("got %q", got)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a server-first protocol waited %v for its greeting", d)
	}
}

// TestRawResetPassesThrough: an app that resets a raw connection resets the
// client's too, so the client tells a broken connection from a finished one.
func TestRawResetPassesThrough(t *testing.T) {
	app := serveTCP(t, func(c net.Conn) {
		io.WriteString(c, "220 ready\r\n")
		c.Read(make([]byte, 16))
		c.(*net.TCPConn).SetLinger(0) // Close resets
	})
	r := startRouter(t, Config{AppAddr: app})
	c, err := net.DialTimeout("tcp", r.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, "EHLO x\r\n")
	got, err := io.ReadAll(c)
	if err == nil || !strings.Contains(err.Error(), "reset") {
		t.Fatalf("read %q, then %v; want the app's reset", got, err)
	}
}

// A request its client gave up on after slowRequest leaves a line at Info,
// although it ends in a panic (http.ErrAbortHandler) rather than a return.
func TestClientGaveUpLogged(t *testing.T) {
	defer func(d time.Duration) { slowRequest = d }(slowRequest)
	slowRequest = 50 * time.Millisecond

	var logs lockedBuffer
	app := newBackend(t, "app")
	r := startRouter(t, Config{AppAddr: app.addr(), Logger: slog.New(slog.NewTextHandler(&logs, nil))},
		app.route("other", "x-dev=other")) // a header route: requests are proxied, not piped
	c := h1Client(t)
	c.Timeout = 200 * time.Millisecond
	if resp, err := c.Get(r.url("/slow")); err == nil {
		resp.Body.Close()
		t.Fatal("the slow request did not time out")
	}
	<-app.started
	timeout := time.After(5 * time.Second)
	for !strings.Contains(logs.String(), "the client gave up on a slow request") {
		select {
		case <-logs.wrote():
		case <-timeout:
			t.Fatalf("no line about the slow request; logs:\n%s", logs.String())
		}
	}
}

// lockedBuffer is a bytes.Buffer that goroutines may share.
// Each Write wakes a reader of wrote.
type lockedBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{}
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.written != nil {
		select {
		case b.written <- struct{}{}:
		default:
		}
	}
	return b.b.Write(p)
}

// wrote has a value when b was written since it was last read.
func (b *lockedBuffer) wrote() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.written == nil {
		b.written = make(chan struct{}, 1)
	}
	return b.written
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestServeDrains: with a DrainTimeout, the HTTP requests in flight when
// Serve's ctx ends (to the laptop over HTTP/1.1, to the app over h2c)
// finish, and Serve returns once they have; with a short one, a request
// that has not finished in time fails, and Serve returns at its end. (A
// port that never had header routes passes connections through whole: it
// knows no request to wait for, and they close at once.)
func TestServeDrains(t *testing.T) {
	type answer struct {
		who string
		err error
	}
	inFlight := func(r *testRouter, c *http.Client, hdr ...string) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			req, err := http.NewRequest(http.MethodGet, r.url("/slow"), nil)
			if err != nil {
				ch <- answer{"", err}
				return
			}
			for i := 0; i < len(hdr); i += 2 {
				req.Header.Add(hdr[i], hdr[i+1])
			}
			resp, err := c.Do(req)
			if err != nil {
				ch <- answer{"", err}
				return
			}
			defer resp.Body.Close()
			_, err = io.ReadAll(resp.Body)
			ch <- answer{resp.Header.Get("X-Served-By"), err}
		}()
		return ch
	}

	t.Run("requests in flight finish", func(t *testing.T) {
		app, alice := newBackend(t, "app"), newBackend(t, "alice")
		r := startRouter(t, Config{AppAddr: app.addr(), DrainTimeout: 5 * time.Second}, alice.route("alice", "x-dev=alice"))
		toLaptop := inFlight(r, h1Client(t), "X-Dev", "alice")
		toApp := inFlight(r, h2cClient(t))
		<-alice.started
		<-app.started
		stopped := make(chan struct{})
		go func() { r.stop(t); close(stopped) }()
		select {
		case <-stopped:
			t.Fatal("Serve returned with requests in flight")
		case <-time.After(300 * time.Millisecond): // well into the drain
		}
		close(alice.release)
		close(app.release)
		if a := <-toLaptop; a.err != nil || a.who != "alice" {
			t.Errorf("the request to the laptop in flight: served by %q, %v; want alice", a.who, a.err)
		}
		if a := <-toApp; a.err != nil || a.who != "app" {
			t.Errorf("the request to the app in flight: served by %q, %v; want app", a.who, a.err)
		}
		<-stopped
	})

	t.Run("a request that outlasts the drain fails", func(t *testing.T) {
		app, alice := newBackend(t, "app"), newBackend(t, "alice")
		r := startRouter(t, Config{AppAddr: app.addr(), DrainTimeout: 200 * time.Millisecond}, alice.route("alice", "x-dev=alice"))
		slow := inFlight(r, h1Client(t))
		<-app.started
		start := time.Now()
		r.stop(t)
		if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
			t.Errorf("Serve returned %v after cancel, want after the 200ms drain", d)
		}
		if a := <-slow; a.err == nil {
			t.Errorf("the request outlasting the drain was served by %q", a.who)
		}
	})
}
