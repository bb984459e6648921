package router

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-tele/kubectl-tele/internal/testcert"
	"github.com/kubectl-tele/kubectl-tele/pkg/match"
)

const tlsName = "echo.ns.svc"

// newTLSBackend is a backend that serves HTTPS (HTTP/1.1 and h2 by ALPN)
// with pair, as an app that terminates TLS itself does.
func newTLSBackend(t *testing.T, name string, pair tls.Certificate, h2 bool) *backend {
	t.Helper()
	b := &backend{name: name, started: make(chan string, 16), release: make(chan struct{})}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(b.serveHTTP))
	protos := []string{"http/1.1"}
	if h2 {
		protos = []string{"h2", "http/1.1"}
	}
	b.srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: protos}
	b.srv.EnableHTTP2 = h2
	b.srv.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelDebug)
	b.srv.StartTLS()
	t.Cleanup(b.srv.Close)
	return b
}

// tlsClient verifies the server against ca by the name tlsName, as an
// in-cluster client of the Service does, over HTTP/2 or HTTP/1.1.
func tlsClient(ca *testcert.CA, h2 bool) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: ca.Pool(), ServerName: tlsName},
		DisableKeepAlives: false,
	}
	p := new(http.Protocols)
	if h2 {
		p.SetHTTP2(true)
	} else {
		p.SetHTTP1(true)
	}
	tr.Protocols = p
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func getVia(t *testing.T, c *http.Client, addr, hdr string) (served, proto string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "https://"+addr+"/x", nil)
	if hdr != "" {
		k, v, _ := strings.Cut(hdr, "=")
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET with %q: %v", hdr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET with %q: %s: %s", hdr, resp.Status, body)
	}
	return resp.Header.Get("X-Served-By"), resp.Proto + " upstream " + strings.Fields(string(body))[1]
}

func TestTLSRoutes(t *testing.T) {
	ca := testcert.NewCA(t, "test CA")
	leaf := ca.Leaf(t, tlsName).TLS(t)
	laptopOwn := testcert.NewCA(t, "laptop").Leaf(t, "localhost").TLS(t)
	tests := []struct {
		name     string
		appH2    bool
		localTLS bool
		clientH2 bool
		// what the client sees: served by, and "PROTO upstream PROTO"
		wantAlice, wantApp string
	}{
		{name: "h1 to cleartext laptop", appH2: true, clientH2: false,
			wantAlice: "HTTP/1.1 upstream HTTP/1.1", wantApp: "HTTP/1.1 upstream HTTP/1.1"},
		{name: "h2 to cleartext laptop goes HTTP/1.1", appH2: true, clientH2: true,
			wantAlice: "HTTP/2.0 upstream HTTP/1.1", wantApp: "HTTP/2.0 upstream HTTP/2.0"},
		{name: "h2 to an app without h2", appH2: false, clientH2: true,
			wantAlice: "HTTP/2.0 upstream HTTP/1.1", wantApp: "HTTP/2.0 upstream HTTP/1.1"},
		{name: "h2 to local TLS", appH2: true, localTLS: true, clientH2: true,
			wantAlice: "HTTP/2.0 upstream HTTP/2.0", wantApp: "HTTP/2.0 upstream HTTP/2.0"},
		{name: "h1 to local TLS", appH2: true, localTLS: true, clientH2: false,
			wantAlice: "HTTP/1.1 upstream HTTP/1.1", wantApp: "HTTP/1.1 upstream HTTP/1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			app := newTLSBackend(t, "app", leaf, tt.appH2)
			var alice *backend
			if tt.localTLS {
				alice = newTLSBackend(t, "alice", laptopOwn, true)
			} else {
				alice = newBackend(t, "alice")
			}
			rt := alice.route("alice", "x-dev=alice")
			rt.TLS, rt.LocalTLS = &leaf, tt.localTLS
			r := startRouter(t, Config{AppAddr: app.addr()}, rt)
			c := tlsClient(ca, tt.clientH2)
			for i := range 3 { // on one kept-alive connection
				for _, want := range []struct{ hdr, by, proto string }{
					{"x-dev=alice", "alice", tt.wantAlice},
					{"x-dev=bob", "app", tt.wantApp},
				} {
					by, proto := getVia(t, c, r.addr, want.hdr)
					if by != want.by || proto != want.proto {
						t.Errorf("request %d with %s: served by %s (%s), want %s (%s)", i, want.hdr, by, proto, want.by, want.proto)
					}
				}
			}
			st := r.Stats()
			if st.Routes["alice"].Requests != 3 || st.App.Requests != 3 {
				t.Errorf("stats: alice %+v, app %+v; want 3 requests each", st.Routes["alice"], st.App)
			}
		})
	}
}

// gRPC needs HTTP/2: over TLS from its client, it reaches a cleartext
// laptop as h2c.
func TestTLSGRPCToLaptopIsH2C(t *testing.T) {
	ca := testcert.NewCA(t, "test CA")
	leaf := ca.Leaf(t, tlsName).TLS(t)
	app, alice := newTLSBackend(t, "app", leaf, true), newBackend(t, "alice")
	rt := alice.route("alice", "x-dev=alice")
	rt.TLS = &leaf
	r := startRouter(t, Config{AppAddr: app.addr()}, rt)
	req, _ := http.NewRequest("POST", "https://"+r.addr+"/pkg.Svc/Method", strings.NewReader("x"))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("X-Dev", "alice")
	resp, err := tlsClient(ca, true).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(body), "alice HTTP/2.0") {
		t.Errorf("got %q, want alice over HTTP/2.0 (h2c)", body)
	}
}

// A route with a certificate and no terms takes requests, not raw
// connections: the laptop's cleartext server answers them all.
func TestTLSGlobalRouteTerminates(t *testing.T) {
	ca := testcert.NewCA(t, "test CA")
	leaf := ca.Leaf(t, tlsName).TLS(t)
	app, alice := newTLSBackend(t, "app", leaf, true), newBackend(t, "alice")
	rt := alice.route("alice")
	rt.TLS = &leaf
	r := startRouter(t, Config{AppAddr: app.addr()}, rt)
	c := tlsClient(ca, true)
	for range 3 {
		if by, _ := getVia(t, c, r.addr, ""); by != "alice" {
			t.Errorf("served by %s, want alice", by)
		}
	}
}

// Without a certificate, TLS goes raw to the app, which the client
// verifies itself.
func TestTLSWithoutCertificatePassesThrough(t *testing.T) {
	ca := testcert.NewCA(t, "test CA")
	leaf := ca.Leaf(t, tlsName).TLS(t)
	app, alice := newTLSBackend(t, "app", leaf, true), newBackend(t, "alice")
	r := startRouter(t, Config{AppAddr: app.addr()}, alice.route("alice", "x-dev=alice"))
	by, _ := getVia(t, tlsClient(ca, true), r.addr, "x-dev=alice")
	if by != "app" {
		t.Errorf("served by %s, want app", by)
	}
	if st := r.Stats(); st.App.Conns != 1 {
		t.Errorf("app conns %d, want 1 spliced", st.App.Conns)
	}
}

// Cleartext HTTP on a port with a TLS route is routed as before.
func TestTLSRouteStillRoutesCleartext(t *testing.T) {
	ca := testcert.NewCA(t, "test CA")
	leaf := ca.Leaf(t, tlsName).TLS(t)
	app, alice := newBackend(t, "app"), newBackend(t, "alice")
	rt := alice.route("alice", "x-dev=alice")
	rt.TLS = &leaf
	r := startRouter(t, Config{AppAddr: app.addr()}, rt)
	for hdr, want := range map[string]string{"alice": "alice", "bob": "app"} {
		req, _ := http.NewRequest("GET", r.url("/"), nil)
		req.Header.Set("X-Dev", hdr)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if by := resp.Header.Get("X-Served-By"); by != want {
			t.Errorf("x-dev %s: served by %s, want %s", hdr, by, want)
		}
	}
}

// A client that does not trust the certificate fails its handshake, and
// nothing reaches the app or the laptop.
func TestTLSUntrustedCertificate(t *testing.T) {
	ca := testcert.NewCA(t, "test CA")
	leaf := ca.Leaf(t, tlsName).TLS(t)
	app, alice := newTLSBackend(t, "app", leaf, true), newBackend(t, "alice")
	rt := alice.route("alice", "x-dev=alice")
	rt.TLS = &leaf
	r := startRouter(t, Config{AppAddr: app.addr()}, rt)
	other := testcert.NewCA(t, "another CA")
	_, err := tlsClient(other, false).Get("https://" + r.addr + "/")
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("GET with another CA: %v, want a certificate error", err)
	}
	if st := r.Stats(); st.App.Requests+st.Routes["alice"].Requests != 0 {
		t.Errorf("stats %+v, want no requests", st)
	}
}

// When the laptop is gone, a TLS request it would take is served by the
// app over TLS.
func TestTLSFallbackToAppOverTLS(t *testing.T) {
	ca := testcert.NewCA(t, "test CA")
	leaf := ca.Leaf(t, tlsName).TLS(t)
	app := newTLSBackend(t, "app", leaf, true)
	rt := Route{ID: "alice", Match: match.MustParse("x-dev=alice"), TLS: &leaf,
		Dial: func(context.Context) (net.Conn, error) { return nil, ErrLaptopGone }}
	r := startRouter(t, Config{AppAddr: app.addr()}, rt)
	for _, h2 := range []bool{false, true} {
		if by, _ := getVia(t, tlsClient(ca, h2), r.addr, "x-dev=alice"); by != "app" {
			t.Errorf("h2 %v: served by %s, want app", h2, by)
		}
	}
	if st := r.Stats(); st.Routes["alice"].Fallbacks != 2 {
		t.Errorf("fallbacks %d, want 2", st.Routes["alice"].Fallbacks)
	}
}

func TestSniffTLS(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want proto
	}{
		{"\x16", protoUnknown},
		{"\x16\x03\x01\x00\xf1\x01", protoTLS},
		{"\x16\x03\x03\x02\x00\x01\x00", protoTLS},
		{"\x16\x02", protoOther},
		{"\x16\x03\x05", protoOther},
		{"\x16\x03\x01\x00\x00", protoOther},
		{"\x16\x03\x01\x48\x01", protoOther}, // longer than a record
		{"\x16\x03\x01\x00\x10\x02", protoOther},
	} {
		if got := sniff([]byte(tt.in)); got != tt.want {
			t.Errorf("sniff(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestTLSForwardsSNI: the agent, as the app's TLS client, asks for the
// name the client asked it for (SNI), so that an app that picks its
// certificate by name is asked for the right one; a client that sends no
// name (it dialed an address) is passed on without one.
func TestTLSForwardsSNI(t *testing.T) {
	ca := testcert.NewCA(t, "test CA")
	leaf := ca.Leaf(t, tlsName).TLS(t)
	names := make(chan string, 16)
	app := &backend{name: "app", started: make(chan string, 16), release: make(chan struct{})}
	app.srv = httptest.NewUnstartedServer(http.HandlerFunc(app.serveHTTP))
	app.srv.TLS = &tls.Config{Certificates: []tls.Certificate{leaf}, GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		names <- h.ServerName
		return nil, nil
	}}
	app.srv.Config.ErrorLog = slog.NewLogLogger(slog.DiscardHandler, slog.LevelDebug)
	app.srv.StartTLS()
	t.Cleanup(app.srv.Close)
	alice := newBackend(t, "alice")
	rt := alice.route("alice", "x-dev=alice")
	rt.TLS = &leaf
	r := startRouter(t, Config{AppAddr: app.addr()}, rt)

	if by, _ := getVia(t, tlsClient(ca, false), r.addr, "x-dev=bob"); by != "app" {
		t.Fatalf("served by %s", by)
	}
	if got := <-names; got != tlsName {
		t.Errorf("the app was asked for %q, want %q", got, tlsName)
	}
	noSNI := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second} //nolint:gosec // the test's own server
	if by, _ := getVia(t, noSNI, r.addr, "x-dev=bob"); by != "app" {
		t.Fatalf("served by %s", by)
	}
	if got := <-names; got != "" {
		t.Errorf("without SNI from the client, the app was asked for %q", got)
	}
}
