package manager

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-tele/kubectl-tele/pkg/manager/internal/identity"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

const testNS = "team"

func writeResolvConf(t testing.TB, nameserver string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "resolv.conf")
	text := fmt.Sprintf("search %s.svc.cluster.local svc.cluster.local cluster.local\nnameserver %s\noptions ndots:5\n", testNS, nameserver)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func testConfig(t testing.TB) Config {
	return Config{
		Namespace:  testNS,
		PodName:    "manager-0",
		Client:     newFakeClientset(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: testNS}, Status: corev1.PodStatus{PodIP: "10.244.7.3"}}),
		ResolvConf: writeResolvConf(t, "10.96.0.10"),
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Version:    "v0.0.0-test",
		PodUID:     "manager-uid",
		tokenUser:  testTokenUser,
	}
}

// startServer serves s over bufconn, running s.Run too, and returns a client.
// Everything it starts is stopped and waited for at cleanup.
func startServer(t testing.TB, cfg Config) (*Server, teleproto.ManagerClient) {
	t.Helper()
	return startServerAt(t, cfg, nil)
}

// startServerAt is startServer with the server's clock, when now is not nil.
func startServerAt(t testing.TB, cfg Config, now func() time.Time) (*Server, teleproto.ManagerClient) {
	t.Helper()
	return startServerWith(t, cfg, now, nil, nil)
}

// startServerWith is startServerAt with more options for the server and
// the client's connection.
func startServerWith(t testing.TB, cfg Config, now func() time.Time, sopts []grpc.ServerOption, copts []grpc.DialOption) (*Server, teleproto.ManagerClient) {
	t.Helper()
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	if now != nil {
		s.now = now
	}
	lis := bufconn.Listen(1 << 20)
	gs := grpc.NewServer(append(sopts, grpc.UnaryInterceptor(s.skewHeaders))...)
	teleproto.RegisterManagerServer(gs, s)
	ctx, cancel := context.WithCancel(context.Background())
	var g errgroup.Group
	g.Go(func() error { return gs.Serve(lis) })
	g.Go(func() error { _ = s.Run(ctx); return nil })
	cc, err := grpc.NewClient("passthrough:///bufnet", append(copts,
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cc.Close()
		cancel()
		gs.Stop()
		s.Close()
		if err := g.Wait(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s, teleproto.NewManagerClient(cc)
}

func arrive(t testing.TB, c teleproto.ManagerClient) *teleproto.ArriveResponse {
	t.Helper()
	resp, err := c.Arrive(context.Background(), proven(t, c, "me"))
	if err != nil {
		t.Fatalf("Arrive: %v", err)
	}
	return resp
}

// challenger is a Server, or a client of one.
type challenger interface {
	Challenge(context.Context, *teleproto.ChallengeRequest) (*teleproto.ChallengeResponse, error)
}

type serverChallenger struct{ s *Server }

func (c serverChallenger) Challenge(ctx context.Context, r *teleproto.ChallengeRequest) (*teleproto.ChallengeResponse, error) {
	return c.s.Challenge(ctx, r)
}

type clientChallenger struct{ c teleproto.ManagerClient }

func (c clientChallenger) Challenge(ctx context.Context, r *teleproto.ChallengeRequest) (*teleproto.ChallengeResponse, error) {
	return c.c.Challenge(ctx, r)
}

// proven is an ArriveRequest of this protocol from user's laptop, with the
// test token of user (see testTokenUser) for a fresh challenge of c (a
// *Server or a teleproto.ManagerClient).
func proven(t testing.TB, c any, user string) *teleproto.ArriveRequest {
	t.Helper()
	var ch challenger
	switch c := c.(type) {
	case *Server:
		ch = serverChallenger{c}
	case teleproto.ManagerClient:
		ch = clientChallenger{c}
	}
	resp, err := ch.Challenge(context.Background(), &teleproto.ChallengeRequest{})
	if err != nil {
		t.Fatalf("Challenge: %v", err)
	}
	return &teleproto.ArriveRequest{
		ProtocolVersion: teleproto.CurrentProtocolVersion, ClientVersion: "test", Hostname: user + "-laptop", User: user, Namespace: testNS,
		Proof: &teleproto.Proof{Nonce: resp.GetNonce(), Credential: &teleproto.Proof_BearerToken{BearerToken: "token-" + user}},
	}
}

// testTokenUser takes "token-NAME" for user NAME, as an API server would
// take a token; anything else is refused.
func testTokenUser(_ context.Context, token string) (identity.User, error) {
	name, ok := strings.CutPrefix(token, "token-")
	if !ok {
		return identity.User{}, errors.New("Unauthorized")
	}
	return identity.User{Name: name, UID: "uid-" + name, Groups: []string{identity.Authenticated}}, nil
}

func wantCode(t *testing.T, what string, err error, code codes.Code, contains ...string) {
	t.Helper()
	if got := status.Code(err); got != code {
		t.Fatalf("%s: code %v (%v), want %v", what, got, err, code)
	}
	for _, c := range contains {
		if !strings.Contains(status.Convert(err).Message(), c) {
			t.Errorf("%s: message %q does not mention %q", what, status.Convert(err).Message(), c)
		}
	}
}

// TestSkewHeaders: every unary response, an error too, says the manager's
// protocol, version and session count, so a laptop of another version can ask
// with no session (Remain with an empty ID).
func TestSkewHeaders(t *testing.T) {
	_, c := startServer(t, testConfig(t))
	probe := func(wantSessions string) {
		t.Helper()
		var md metadata.MD
		_, err := c.Remain(context.Background(), &teleproto.SessionRequest{}, grpc.Header(&md))
		wantCode(t, "Remain", err, codes.NotFound)
		for k, want := range map[string]string{
			teleproto.HeaderProtocol: "2",
			teleproto.HeaderVersion:  "v0.0.0-test",
			teleproto.HeaderSessions: wantSessions,
		} {
			if got := md.Get(k); len(got) != 1 || got[0] != want {
				t.Errorf("header %s = %q, want %q", k, got, want)
			}
		}
	}
	probe("0")
	arrive(t, c)
	arrive(t, c)
	probe("2")
	var md metadata.MD
	if _, err := c.Arrive(context.Background(), proven(t, c, "me"), grpc.Header(&md)); err != nil {
		t.Fatal(err)
	}
	if got := md.Get(teleproto.HeaderSessions); len(got) != 1 || got[0] != "3" {
		t.Errorf("Arrive's %s = %q, want [3] (counting itself)", teleproto.HeaderSessions, got)
	}
}

func TestArriveProtocolVersion(t *testing.T) {
	_, c := startServer(t, testConfig(t))
	tests := []struct {
		name    string
		version teleproto.ProtocolVersion
		code    codes.Code
	}{
		{name: "unspecified", version: teleproto.ProtocolVersion_PROTOCOL_VERSION_UNSPECIFIED, code: codes.FailedPrecondition},
		{name: "newer", version: teleproto.ProtocolVersion(3), code: codes.FailedPrecondition},
		{name: "older", version: teleproto.ProtocolVersion(1), code: codes.FailedPrecondition},
		{name: "v2", version: teleproto.ProtocolVersion_PROTOCOL_VERSION_2, code: codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := proven(t, c, "me")
			req.ProtocolVersion, req.ClientVersion = tt.version, "v9"
			resp, err := c.Arrive(context.Background(), req)
			if tt.code != codes.OK {
				wantCode(t, "Arrive", err, tt.code, tt.version.String(), "PROTOCOL_VERSION_2", "kubectl tele uninstall -n "+testNS, "v0.0.0-test")
				return
			}
			if err != nil {
				t.Fatalf("Arrive: %v", err)
			}
			if resp.GetSessionId() == "" || resp.GetHeartbeatTimeoutMs() != DefaultHeartbeatTimeout.Milliseconds() || resp.GetManagerVersion() != "v0.0.0-test" {
				t.Errorf("Arrive = %v", resp)
			}
			ci := resp.GetCluster()
			if ci.GetClusterDomain() != "cluster.local" || ci.GetDnsServer() != "10.96.0.10:53" || strings.Join(ci.GetPodCidrs(), ",") != "10.244.7.0/24" {
				t.Errorf("ClusterInfo = %v", ci)
			}
		})
	}
}

func TestSessions(t *testing.T) {
	cfg := testConfig(t)
	cfg.HeartbeatTimeout = 150 * time.Millisecond
	// The server's clock moves only when the test says: a loaded machine
	// cannot stretch a step past the heartbeat timeout.
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	_, c := startServerAt(t, cfg, func() time.Time { return time.Unix(0, clock.Load()) })
	ctx := context.Background()

	a, b := arrive(t, c), arrive(t, c)
	if a.GetSessionId() == b.GetSessionId() {
		t.Fatalf("two sessions share ID %q", a.GetSessionId())
	}
	// Remain keeps a alive past several heartbeat timeouts; b lapses.
	for range 6 {
		clock.Add(int64(50 * time.Millisecond))
		if _, err := c.Remain(ctx, &teleproto.SessionRequest{SessionId: a.GetSessionId()}); err != nil {
			t.Fatalf("Remain: %v", err)
		}
	}
	_, err := c.Remain(ctx, &teleproto.SessionRequest{SessionId: b.GetSessionId()})
	wantCode(t, "Remain after heartbeat timeout", err, codes.NotFound, "reconnect")
	_, err = c.LookupDNS(ctx, &teleproto.DNSRequest{SessionId: b.GetSessionId()})
	wantCode(t, "LookupDNS on expired session", err, codes.NotFound)

	if _, err := c.Depart(ctx, &teleproto.SessionRequest{SessionId: a.GetSessionId()}); err != nil {
		t.Fatalf("Depart: %v", err)
	}
	_, err = c.Remain(ctx, &teleproto.SessionRequest{SessionId: a.GetSessionId()})
	wantCode(t, "Remain after Depart", err, codes.NotFound)
	_, err = c.Depart(ctx, &teleproto.SessionRequest{SessionId: "nope"})
	wantCode(t, "Depart unknown", err, codes.NotFound)
}

// tcpServer serves each connection with handle on 127.0.0.1.
func tcpServer(t testing.TB, handle func(*net.TCPConn)) netip.AddrPort {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var g errgroup.Group
	g.Go(func() error {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return nil
			}
			g.Go(func() error {
				defer conn.Close()
				handle(conn.(*net.TCPConn))
				return nil
			})
		}
	})
	t.Cleanup(func() { lis.Close(); _ = g.Wait() })
	return netip.MustParseAddrPort(lis.Addr().String())
}

func openTunnel(t testing.TB, ctx context.Context, c teleproto.ManagerClient, session string, proto teleproto.Protocol, dest netip.AddrPort) teleproto.Manager_TunnelClient {
	t.Helper()
	st, err := c.Tunnel(ctx)
	if err != nil {
		t.Fatalf("Tunnel: %v", err)
	}
	err = st.Send(teleproto.FlowOpen(session, proto, netip.MustParseAddrPort("100.64.0.1:40000"), dest))
	if err != nil {
		t.Fatalf("send Open: %v", err)
	}
	return st
}

func sendData(t testing.TB, st teleproto.Manager_TunnelClient, b []byte) {
	t.Helper()
	if err := st.Send(&teleproto.TunnelRequest{Msg: &teleproto.TunnelRequest_Data{Data: b}}); err != nil {
		t.Fatalf("send data: %v", err)
	}
}

// recvAll reads data until the stream ends and returns it with the final error
// (nil for a clean end).
func recvAll(st teleproto.Manager_TunnelClient) ([]byte, error) {
	var buf bytes.Buffer
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return buf.Bytes(), nil
		}
		if err != nil {
			return buf.Bytes(), err
		}
		buf.Write(m.GetData())
	}
}

func TestTunnelTCP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, c := startServer(t, testConfig(t))
	sid := arrive(t, c).GetSessionId()

	// echo replies with what it read, then "bye" once the client half-closes:
	// the half-close must reach it, and data must still flow back after it.
	echo := tcpServer(t, func(conn *net.TCPConn) {
		_, _ = io.Copy(conn, conn)
		_, _ = conn.Write([]byte("bye"))
		_ = conn.CloseWrite()
	})
	// greeter speaks first and closes without reading.
	greeter := tcpServer(t, func(conn *net.TCPConn) { _, _ = conn.Write([]byte("hello")) })

	t.Run("echo and half-close", func(t *testing.T) {
		st := openTunnel(t, ctx, c, sid, teleproto.Protocol_PROTOCOL_TCP, echo)
		big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // several buffers' worth
		var sent bytes.Buffer
		for chunk := range chunks(big, 7000) {
			sendData(t, st, chunk)
			sent.Write(chunk)
		}
		if err := st.CloseSend(); err != nil {
			t.Fatal(err)
		}
		got, err := recvAll(st)
		if err != nil {
			t.Fatalf("tunnel ended with %v", err)
		}
		if want := append(sent.Bytes(), "bye"...); !bytes.Equal(got, want) {
			t.Errorf("got %d bytes back, want %d (tail %q)", len(got), len(want), tail(got))
		}
	})
	t.Run("the ack once dialed, before the data", func(t *testing.T) {
		st := openTunnel(t, ctx, c, sid, teleproto.Protocol_PROTOCOL_TCP, greeter)
		m, err := st.Recv()
		if err != nil || teleproto.AckOf(m) != nil {
			t.Fatalf("first message %v, %v; want opened", m, err)
		}
		got, err := recvAll(st)
		if err != nil || string(got) != "hello" {
			t.Errorf("then %q, %v; want \"hello\", clean end", got, err)
		}
	})
	t.Run("destination closes first", func(t *testing.T) {
		st := openTunnel(t, ctx, c, sid, teleproto.Protocol_PROTOCOL_TCP, greeter)
		got, err := recvAll(st)
		if err != nil || string(got) != "hello" {
			t.Errorf("got %q, %v; want \"hello\", clean end", got, err)
		}
	})
	t.Run("a cancelled flow resets the destination", func(t *testing.T) {
		got, readErr := make(chan struct{}), make(chan error, 1)
		sink := tcpServer(t, func(conn *net.TCPConn) {
			if _, err := conn.Read(make([]byte, 64)); err != nil {
				readErr <- err
				return
			}
			close(got)
			_, err := io.Copy(io.Discard, conn)
			readErr <- err
		})
		fctx, fcancel := context.WithCancel(ctx)
		st := openTunnel(t, fctx, c, sid, teleproto.Protocol_PROTOCOL_TCP, sink)
		sendData(t, st, []byte("half a request"))
		select {
		case <-got: // the manager has dialed and written
		case <-ctx.Done():
			t.Fatal("the destination never got the flow's first bytes")
		}
		fcancel()
		select {
		case err := <-readErr:
			if err == nil || !strings.Contains(err.Error(), "reset") {
				t.Errorf("the destination read %v; want a connection reset, not a clean end", err)
			}
		case <-ctx.Done():
			t.Fatal("the destination never saw the flow end")
		}
	})
	t.Run("session ends", func(t *testing.T) {
		sid2 := arrive(t, c).GetSessionId()
		st := openTunnel(t, ctx, c, sid2, teleproto.Protocol_PROTOCOL_TCP, echo)
		if m, err := st.Recv(); err != nil || teleproto.AckOf(m) != nil {
			t.Fatalf("Recv = %v, %v; want the ack", m, err)
		}
		sendData(t, st, []byte("ping"))
		if m, err := st.Recv(); err != nil || string(m.GetData()) != "ping" {
			t.Fatalf("Recv = %v, %v", m, err)
		}
		if _, err := c.Depart(ctx, &teleproto.SessionRequest{SessionId: sid2}); err != nil {
			t.Fatal(err)
		}
		_, err := recvAll(st)
		wantCode(t, "tunnel of departed session", err, codes.NotFound, "reconnect")
	})
}

func chunks(b []byte, n int) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(b) > 0 {
			k := min(n, len(b))
			if !yield(b[:k]) {
				return
			}
			b = b[k:]
		}
	}
}

func tail(b []byte) []byte { return b[max(0, len(b)-16):] }

func TestTunnelErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, c := startServer(t, testConfig(t))
	sid := arrive(t, c).GetSessionId()

	// A port nobody listens on: listen, note it, close.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := netip.MustParseAddrPort(lis.Addr().String())
	lis.Close()

	t.Run("closed port", func(t *testing.T) {
		st := openTunnel(t, ctx, c, sid, teleproto.Protocol_PROTOCOL_TCP, closed)
		m, err := st.Recv()
		if err != nil {
			t.Fatalf("want a Close message first, got %v", err)
		}
		if !strings.Contains(m.GetClose().GetError(), "refused") {
			t.Errorf("Close = %v, want connection refused", m)
		}
		_, err = st.Recv()
		wantCode(t, "dial closed port", err, codes.Unavailable, "refused", closed.String())
	})
	t.Run("first message not open", func(t *testing.T) {
		st, err := c.Tunnel(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sendData(t, st, []byte("x"))
		_, err = st.Recv()
		wantCode(t, "data before open", err, codes.InvalidArgument, "Open")
	})
	t.Run("unknown session", func(t *testing.T) {
		st := openTunnel(t, ctx, c, "nope", teleproto.Protocol_PROTOCOL_TCP, closed)
		_, err := st.Recv()
		wantCode(t, "unknown session", err, codes.NotFound, "reconnect")
	})
	t.Run("bad destination", func(t *testing.T) {
		st, err := c.Tunnel(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = st.Send(&teleproto.TunnelRequest{Msg: &teleproto.TunnelRequest_Open{Open: &teleproto.TunnelOpen{
			SessionId: sid, Kind: &teleproto.TunnelOpen_Destination{Destination: &teleproto.Destination{
				Protocol: teleproto.Protocol_PROTOCOL_TCP, Ip: []byte{1, 2, 3}, Port: 80}}}}})
		_, err = st.Recv()
		wantCode(t, "3-byte IP", err, codes.InvalidArgument)
	})
}

func TestTunnelUDP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg := testConfig(t)
	cfg.UDPIdleTimeout = 300 * time.Millisecond
	_, c := startServer(t, cfg)
	sid := arrive(t, c).GetSessionId()

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var g errgroup.Group
	g.Go(func() error {
		buf := make([]byte, 65535)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return nil
			}
			_, _ = pc.WriteTo(append([]byte("echo:"), buf[:n]...), from)
		}
	})
	defer func() { pc.Close(); _ = g.Wait() }()
	dest := netip.MustParseAddrPort(pc.LocalAddr().String())

	t.Run("datagrams then idle end", func(t *testing.T) {
		st := openTunnel(t, ctx, c, sid, teleproto.Protocol_PROTOCOL_UDP, dest)
		for _, d := range []string{"one", "two", strings.Repeat("x", 40000)} {
			sendData(t, st, []byte(d))
			m, err := st.Recv()
			if err != nil {
				t.Fatalf("Recv: %v", err)
			}
			if got := string(m.GetData()); got != "echo:"+d {
				t.Errorf("datagram = %.20q (%d bytes), want echo of %.20q", got, len(got), d)
			}
		}
		start := time.Now()
		if _, err := st.Recv(); !errors.Is(err, io.EOF) {
			t.Errorf("after idle: %v, want clean end", err)
		}
		if d := time.Since(start); d < 200*time.Millisecond {
			t.Errorf("flow ended after %v, before the idle timeout", d)
		}
	})
	t.Run("client ends", func(t *testing.T) {
		st := openTunnel(t, ctx, c, sid, teleproto.Protocol_PROTOCOL_UDP, dest)
		sendData(t, st, []byte("hi"))
		if _, err := st.Recv(); err != nil {
			t.Fatal(err)
		}
		_ = st.CloseSend()
		if _, err := st.Recv(); !errors.Is(err, io.EOF) {
			t.Errorf("after CloseSend: %v, want clean end", err)
		}
	})
}

// dnsServer answers A queries for small.example. over UDP, and for
// big.example. only over TCP (over UDP it answers truncated).
func dnsServer(t *testing.T) string {
	t.Helper()
	handler := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		r := new(dns.Msg)
		r.SetReply(q)
		name := q.Question[0].Name
		if name == "big.example." && w.LocalAddr().Network() == "udp" {
			r.Truncated = true
		} else {
			rr, _ := dns.NewRR(name + " 30 IN A 10.96.3.4")
			r.Answer = append(r.Answer, rr)
		}
		_ = w.WriteMsg(r)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		t.Skipf("TCP port %s taken: %v", pc.LocalAddr(), err)
	}
	udp := &dns.Server{PacketConn: pc, Handler: handler}
	tcp := &dns.Server{Listener: lis, Handler: handler}
	var g errgroup.Group
	g.Go(udp.ActivateAndServe)
	g.Go(tcp.ActivateAndServe)
	t.Cleanup(func() { _ = udp.Shutdown(); _ = tcp.Shutdown(); _ = g.Wait() })
	return pc.LocalAddr().String()
}

func TestLookupDNS(t *testing.T) {
	addr := dnsServer(t)
	cfg := testConfig(t)
	cfg.ResolvConf = writeResolvConf(t, addr)
	cfg.DialTimeout = 2 * time.Second
	_, c := startServer(t, cfg)
	resp := arrive(t, c)
	if got := resp.GetCluster().GetDnsServer(); got != addr {
		t.Errorf("dns_server = %q, want %q", got, addr)
	}
	sid := resp.GetSessionId()

	for _, name := range []string{"small.example.", "big.example."} {
		t.Run(name, func(t *testing.T) {
			q := new(dns.Msg)
			q.SetQuestion(name, dns.TypeA)
			wire, err := q.Pack()
			if err != nil {
				t.Fatal(err)
			}
			r, err := c.LookupDNS(context.Background(), &teleproto.DNSRequest{SessionId: sid, Query: wire})
			if err != nil {
				t.Fatalf("LookupDNS: %v", err)
			}
			a := new(dns.Msg)
			if err := a.Unpack(r.GetAnswer()); err != nil {
				t.Fatalf("answer does not unpack: %v", err)
			}
			if a.Id != q.Id || a.Truncated || len(a.Answer) != 1 || a.Answer[0].(*dns.A).A.String() != "10.96.3.4" {
				t.Errorf("answer = %v", a)
			}
		})
	}
	t.Run("garbage", func(t *testing.T) {
		_, err := c.LookupDNS(context.Background(), &teleproto.DNSRequest{SessionId: sid, Query: []byte{1, 2, 3}})
		wantCode(t, "garbage query", err, codes.InvalidArgument)
	})
}

func TestRunIdleExit(t *testing.T) {
	cfg := testConfig(t)
	cfg.ListenAddr = "127.0.0.1:0"
	cfg.IdleTimeout = 200 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := Run(ctx, cfg); err != nil {
		t.Fatalf("Run = %v, want nil on idle", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond || d > 5*time.Second {
		t.Errorf("Run returned after %v, want about the idle timeout", d)
	}
}

// On synctest's clock: the session outlives the idle timeout, and Run
// returns one idle timeout after Depart.
func TestServerIdleWaitsForSessions(t *testing.T) { synctest.Test(t, testServerIdleWaitsForSessions) }

func testServerIdleWaitsForSessions(t *testing.T) {
	cfg := testConfig(t)
	cfg.IdleTimeout = 150 * time.Millisecond
	cfg.HeartbeatTimeout = time.Minute
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	resp, err := s.Arrive(ctx, proven(t, s, "me"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- s.Run(ctx) }()
	time.Sleep(400 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Run returned %v with a session alive", err)
	default:
	}
	if _, err := s.Depart(ctx, &teleproto.SessionRequest{SessionId: resp.GetSessionId()}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if d := time.Since(start); d < 550*time.Millisecond {
		t.Errorf("Run returned %v after start, before idle timeout after Depart", d)
	}
	if _, err := s.Arrive(ctx, proven(t, s, "me")); status.Code(err) != codes.Unavailable {
		t.Errorf("Arrive after idle exit: %v, want Unavailable", err)
	}
}

func TestRunRejectsNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:8081", ":8081", "10.0.0.1:8081", "nope"} {
		cfg := testConfig(t)
		cfg.ListenAddr = addr
		if err := Run(context.Background(), cfg); err == nil {
			t.Errorf("Run(ListenAddr=%q) succeeded", addr)
		}
	}
}

// An API server without ephemeral containers answers the subresource with a
// plain 404; intercept must say so rather than report a vanished pod.
func TestAttachAgentWithoutEphemeralContainers(t *testing.T) {
	cfg := testConfig(t)
	client := cfg.Client.(*fake.Clientset)
	client.PrependReactor("patch", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "ephemeralcontainers" {
			return false, nil, nil
		}
		// What client-go makes of an old API server's 404 page.
		return true, nil, apierrors.NewGenericServerResponse(404, "PATCH", schema.GroupResource{Resource: "pods"}, "web", "404 page not found", 0, true)
	})
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pod, err := client.CoreV1().Pods(testNS).Get(context.Background(), "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.attachAgent(context.Background(), pod, mechNone, false)
	wantCode(t, "attach without ephemeral containers", err, codes.Unimplemented, "does not support ephemeral containers", "1.25")

	if err := client.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("pods"), testNS, "web"); err != nil {
		t.Fatal(err)
	}
	_, err = s.attachAgent(context.Background(), pod, mechNone, false)
	wantCode(t, "attach to a deleted pod", err, codes.Unavailable)
}
