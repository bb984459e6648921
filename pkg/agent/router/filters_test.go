package router

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

// TestPathMethodRoutes routes HTTP/1.1 requests on one kept-alive connection,
// and h2c streams on one connection, by path, by method and by both with a
// header, each request on its own.
func TestPathMethodRoutes(t *testing.T) {
	app := newBackend(t, "app")
	orders, posts, combo := newBackend(t, "orders"), newBackend(t, "posts"), newBackend(t, "combo")
	r := startRouter(t, Config{AppAddr: app.addr()},
		orders.route("orders", ":path^=/api/"),
		posts.route("posts", ":method=POST"),
		combo.route("combo", ":method=PUT", ":path=/x", "x-dev=alice"),
	)
	requests := []struct {
		method, path string
		hdr          []string
		want         string
	}{
		{"GET", "/api/orders?id=7", nil, "orders"},
		{"GET", "/web", nil, "app"},
		{"POST", "/web", nil, "posts"},
		{"POST", "/api/orders", nil, "orders"}, // the first route that matches wins
		{"PUT", "/x?y=1", []string{"X-Dev", "alice"}, "combo"},
		{"PUT", "/x", nil, "app"},                         // header missing
		{"PUT", "/x/", []string{"X-Dev", "alice"}, "app"}, // path differs
		{"GET", "/x", []string{"X-Dev", "alice"}, "app"},  // method differs
		{"GET", "/api%2Forders", nil, "app"},              // not decoded
		{"GET", "/apix?next=/api/", nil, "app"},           // the query is not the path
		{"DELETE", "/api/", nil, "orders"},
	}
	for _, tc := range []struct {
		name   string
		client *http.Client
		proto  string
	}{{"http1", h1Client(t), "HTTP/1.1"}, {"h2c", h2cClient(t), "HTTP/2.0"}} {
		t.Run(tc.name, func(t *testing.T) {
			before := r.Stats()
			accepted := r.ln.n.Load()
			want := map[string]uint64{}
			for _, q := range requests {
				req, err := http.NewRequest(q.method, r.url(q.path), strings.NewReader("body"))
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < len(q.hdr); i += 2 {
					req.Header.Set(q.hdr[i], q.hdr[i+1])
				}
				resp, err := tc.client.Do(req)
				if err != nil {
					t.Fatalf("%s %s: %v", q.method, q.path, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if got := resp.Header.Get("X-Served-By"); got != q.want || !strings.HasPrefix(string(body), q.want+" "+tc.proto) {
					t.Errorf("%s %s %q: served by %q (%q), want %s over %s", q.method, q.path, q.hdr, got, body, q.want, tc.proto)
				}
				// The query reaches whoever serves it byte for byte.
				if _, query, _ := strings.Cut(q.path, "?"); !strings.HasSuffix(string(body), "query="+query) {
					t.Errorf("%s %s: body %q lost the query %q", q.method, q.path, body, query)
				}
				want[q.want]++
			}
			after := r.Stats()
			if got := after.App.Requests - before.App.Requests; got != want["app"] {
				t.Errorf("app counted %d requests, want %d", got, want["app"])
			}
			for _, id := range []string{"orders", "posts", "combo"} {
				if got := after.Routes[id].Requests - before.Routes[id].Requests; got != want[id] {
					t.Errorf("route %s counted %d requests, want %d", id, got, want[id])
				}
			}
			if n := r.ln.n.Load() - accepted; n != 1 {
				t.Errorf("router accepted %d connections, want 1 (every request on one)", n)
			}
		})
	}
}

// TestGRPCByMethod routes gRPC calls by their method, which is their path:
// one method of a service, a whole service by prefix, and every call by the
// HTTP method (gRPC always POSTs).
func TestGRPCByMethod(t *testing.T) {
	const check = "/grpc.health.v1.Health/Check"
	tests := []struct {
		name                  string
		specs                 []string
		checkLaptop, watchLap bool
	}{
		{"one method", []string{":path=" + check}, true, false},
		{"one method and metadata", []string{":path=" + check, "x-dev=alice"}, true, false},
		{"other method", []string{":path=/grpc.health.v1.Health/Watch"}, false, true},
		{"service by prefix", []string{":path^=/grpc.health.v1.Health/"}, true, true},
		{"service by regex", []string{`:path~=/grpc\.health\.v1\.Health/(Check|List)`}, true, false},
		{"another service", []string{":path^=/orders.v1.Orders/"}, false, false},
		{"method POST", []string{":method=POST"}, true, true},
		{"method GET", []string{":method=GET"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			appAddr, _ := startHealthServer(t, healthpb.HealthCheckResponse_NOT_SERVING)
			laptopAddr, _ := startHealthServer(t, healthpb.HealthCheckResponse_SERVING)
			r := startRouter(t, Config{AppAddr: appAddr}, Route{ID: "dev", Match: mustMatch(tt.specs...), Dial: dialTo(laptopAddr)})
			hc := healthClient(t, r.addr)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ctx = metadata.AppendToOutgoingContext(ctx, "x-dev", "alice")
			servedBy := func(laptop bool) healthpb.HealthCheckResponse_ServingStatus {
				if laptop {
					return healthpb.HealthCheckResponse_SERVING
				}
				return healthpb.HealthCheckResponse_NOT_SERVING
			}

			resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if got, want := resp.GetStatus(), servedBy(tt.checkLaptop); got != want {
				t.Errorf("Check answered %v, want %v (laptop: %v)", got, want, tt.checkLaptop)
			}
			w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
			if err != nil {
				t.Fatalf("Watch: %v", err)
			}
			m, err := w.Recv()
			if err != nil {
				t.Fatalf("Watch Recv: %v", err)
			}
			if got, want := m.GetStatus(), servedBy(tt.watchLap); got != want {
				t.Errorf("Watch answered %v, want %v (laptop: %v)", got, want, tt.watchLap)
			}
			cancel()
			var toLaptop uint64
			for _, b := range []bool{tt.checkLaptop, tt.watchLap} {
				if b {
					toLaptop++
				}
			}
			if s := r.Stats(); s.Routes["dev"].Requests != toLaptop || s.App.Requests != 2-toLaptop {
				t.Errorf("stats: laptop %d, app %d; want %d and %d", s.Routes["dev"].Requests, s.App.Requests, toLaptop, 2-toLaptop)
			}
		})
	}
}
