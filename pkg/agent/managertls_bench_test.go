package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/experimental"

	"github.com/kubectl-tele/kubectl-tele/internal/testcert"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
	"github.com/kubectl-tele/kubectl-tele/pkg/tunnel"
)

// echoManager answers every Connect stream with what it receives.
type echoManager struct {
	teleproto.UnimplementedAgentServiceServer
}

func (echoManager) Connect(st teleproto.AgentService_ConnectServer) error {
	if _, err := st.Recv(); err != nil { // the ConnectOpen
		return err
	}
	for {
		m, err := tunnel.Recv(st)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := st.Send(m); err != nil {
			return err
		}
	}
}

// BenchmarkAgentHop is the cost of TLS on the agents' link per intercepted
// request: a Connect stream (one per request, as the agent's dialer opens
// it) over one long-lived connection on loopback, with the options of the
// agent and the manager, carrying a 1 KiB request and its answer, in
// cleartext and over TLS 1.3. Compare the two in the same run:
//
//	go test ./pkg/agent -run '^$' -bench AgentHop -benchtime 2s
func BenchmarkAgentHop(b *testing.B) {
	ns := "team"
	ca := testcert.NewCA(b, "bench CA")
	pair := ca.Leaf(b, teleproto.ManagerServerName(ns))
	tlsCreds, err := newManagerCreds(ca.PEM, ns)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		server []grpc.ServerOption
		client *managerCreds
	}{
		{"cleartext", nil, &managerCreds{TransportCredentials: insecure.NewCredentials(), refused: tlsCreds.refused}},
		{"tls", []grpc.ServerOption{grpc.Creds(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair.TLS(b)}}))}, tlsCreds},
	} {
		b.Run(tc.name, func(b *testing.B) {
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			gs := grpc.NewServer(append(tc.server, experimental.BufferPool(tunnel.BufferPool), grpc.ForceServerCodecV2(tunnel.Codec),
				grpc.InitialWindowSize(tunnel.StreamWindow), grpc.InitialConnWindowSize(tunnel.ConnWindow))...)
			teleproto.RegisterAgentServiceServer(gs, echoManager{})
			done := make(chan struct{})
			go func() { defer close(done); gs.Serve(lis) }()
			defer func() { gs.Stop(); <-done }()
			conn, err := dialManager(lis.Addr().String(), tc.client)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			client := teleproto.NewAgentServiceClient(conn)
			req := make([]byte, 1024)
			request := func() error {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				st, err := client.Connect(ctx)
				if err != nil {
					return err
				}
				if err := st.Send(teleproto.InterceptedOpen("bench")); err != nil {
					return err
				}
				if err := st.SendMsg(tunnel.Data(req)); err != nil {
					return err
				}
				if _, err := st.Recv(); err != nil {
					return err
				}
				if err := st.CloseSend(); err != nil {
					return err
				}
				if _, err := st.Recv(); !errors.Is(err, io.EOF) {
					return err
				}
				return nil
			}
			if err := request(); err != nil { // the connection, and TLS's handshake
				b.Fatal(err)
			}
			b.Run("sequential", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if err := request(); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("32-concurrent", func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
				var failed atomic.Value
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := request(); err != nil {
							failed.Store(err)
							return
						}
					}
				})
				if err, _ := failed.Load().(error); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
