package router

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func startHealthServer(t *testing.T, st healthpb.HealthCheckResponse_ServingStatus) (string, *health.Server) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("svc", st)
	healthpb.RegisterHealthServer(s, hs)
	done := make(chan struct{})
	go func() { defer close(done); s.Serve(ln) }()
	t.Cleanup(func() { s.Stop(); <-done })
	return ln.Addr().String(), hs
}

// healthClient is a gRPC health client of addr over h2c, closed at cleanup.
func healthClient(t *testing.T, addr string) healthpb.HealthClient {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return healthpb.NewHealthClient(cc)
}

// TestGRPC runs real gRPC over h2c through the router: unary calls routed by
// metadata, a status carried only in trailers, and a server stream.
func TestGRPC(t *testing.T) {
	appAddr, _ := startHealthServer(t, healthpb.HealthCheckResponse_NOT_SERVING)
	laptopAddr, laptopHealth := startHealthServer(t, healthpb.HealthCheckResponse_SERVING)
	r := startRouter(t, Config{AppAddr: appAddr}, Route{ID: "alice", Match: mustMatch("x-dev=alice"), Dial: dialTo(laptopAddr)})

	hc := healthClient(t, r.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	alice := metadata.AppendToOutgoingContext(ctx, "x-dev", "alice")

	tests := []struct {
		name    string
		ctx     context.Context
		service string
		want    healthpb.HealthCheckResponse_ServingStatus
		code    codes.Code
	}{
		{"alice to laptop", alice, "svc", healthpb.HealthCheckResponse_SERVING, codes.OK},
		{"others to app", ctx, "svc", healthpb.HealthCheckResponse_NOT_SERVING, codes.OK},
		{"error status in trailers", alice, "nope", 0, codes.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := hc.Check(tt.ctx, &healthpb.HealthCheckRequest{Service: tt.service})
			if got := status.Code(err); got != tt.code {
				t.Fatalf("Check: code %v (%v), want %v", got, err, tt.code)
			}
			if err == nil && resp.GetStatus() != tt.want {
				t.Errorf("Check = %v, want %v", resp.GetStatus(), tt.want)
			}
		})
	}

	t.Run("server stream", func(t *testing.T) {
		w, err := hc.Watch(alice, &healthpb.HealthCheckRequest{Service: "svc"})
		if err != nil {
			t.Fatal(err)
		}
		if m, err := w.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("first Recv = %v, %v", m, err)
		}
		laptopHealth.SetServingStatus("svc", healthpb.HealthCheckResponse_NOT_SERVING)
		if m, err := w.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("second Recv = %v, %v", m, err)
		}
	})
	if n := r.ln.n.Load(); n != 1 {
		t.Errorf("router accepted %d connections, want 1", n)
	}
}

// TestVerbatimResponse checks that the proxy adds no Date or sniffed
// Content-Type that the upstream did not send.
func TestVerbatimResponse(t *testing.T) {
	upstream := serveTCP(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n<html>")
		}
	})

	app := newBackend(t, "app")
	r := startRouter(t, Config{AppAddr: app.addr()}, Route{ID: "raw", Match: mustMatch("x-dev=raw"), Dial: dialTo(upstream)})
	req, _ := http.NewRequest(http.MethodGet, r.url("/"), nil)
	req.Header.Set("X-Dev", "raw")
	resp, err := h1Client(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "<html>" {
		t.Fatalf("body %q", body)
	}
	for _, k := range []string{"Date", "Content-Type"} {
		if v, ok := resp.Header[k]; ok {
			t.Errorf("response has %s: %q, which the upstream did not send", k, v)
		}
	}
}
