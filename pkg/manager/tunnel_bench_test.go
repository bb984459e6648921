package manager

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
	"github.com/kubectl-tele/kubectl-tele/pkg/tunnel"
)

// BenchmarkTunnel is the manager's hop of a laptop's flow: Tunnel streams
// over one in-memory gRPC connection with the manager's and the laptop's
// options (codec, buffer pool, windows), to a destination on loopback,
// through the manager's pump. Its cases: a 1 MiB download per request, a
// 1 KiB request echoed on a kept flow, a flow per request (dial, echo,
// half-close), and a 1 KiB UDP datagram echoed.
//
//	go test ./pkg/manager -run '^$' -bench Tunnel -benchtime 2s
func BenchmarkTunnel(b *testing.B) {
	cfg := testConfig(b)
	cfg.HeartbeatTimeout = time.Hour // no heartbeats are sent
	_, c := startServerWith(b, cfg, nil,
		[]grpc.ServerOption{experimental.BufferPool(tunnel.BufferPool), grpc.ForceServerCodecV2(tunnel.Codec),
			grpc.InitialWindowSize(tunnel.StreamWindow), grpc.InitialConnWindowSize(tunnel.ConnWindow)},
		[]grpc.DialOption{experimental.WithBufferPool(tunnel.BufferPool), grpc.WithDefaultCallOptions(grpc.ForceCodecV2(tunnel.Codec)),
			grpc.WithInitialWindowSize(tunnel.StreamWindow), grpc.WithInitialConnWindowSize(tunnel.ConnWindow)})
	sid := arrive(b, c).GetSessionId()
	ctx := b.Context()

	const mib = 1 << 20
	download := bytes.Repeat([]byte("d"), mib)
	// Each byte it reads asks for a MiB.
	bulk := tcpServer(b, func(conn *net.TCPConn) {
		one := make([]byte, 1)
		for {
			if _, err := conn.Read(one); err != nil {
				return
			}
			if _, err := conn.Write(download); err != nil {
				return
			}
		}
	})
	echo := tcpServer(b, func(conn *net.TCPConn) { _, _ = io.Copy(conn, conn) })
	req := bytes.Repeat([]byte("r"), 1<<10)

	// open starts a flow to dest and takes the manager's Ack.
	open := func(b *testing.B, proto teleproto.Protocol, dest netip.AddrPort) teleproto.Manager_TunnelClient {
		st := openTunnel(b, ctx, c, sid, proto, dest)
		if proto == teleproto.Protocol_PROTOCOL_TCP {
			m, err := st.Recv()
			if err == nil {
				err = teleproto.AckOf(m)
			}
			if err != nil {
				b.Fatalf("ack: %v", err)
			}
		}
		return st
	}
	// recvN receives n bytes of data.
	recvN := func(b *testing.B, st teleproto.Manager_TunnelClient, n int) {
		for n > 0 {
			m, err := st.Recv()
			if err != nil {
				b.Fatalf("recv: %v", err)
			}
			n -= len(m.GetData())
		}
	}

	b.Run("tcp-download-1MiB", func(b *testing.B) {
		st := open(b, teleproto.Protocol_PROTOCOL_TCP, bulk)
		b.SetBytes(mib)
		for b.Loop() {
			sendData(b, st, []byte("g"))
			recvN(b, st, mib)
		}
		_ = st.CloseSend()
	})
	b.Run("tcp-echo-1KiB", func(b *testing.B) {
		st := open(b, teleproto.Protocol_PROTOCOL_TCP, echo)
		for b.Loop() {
			sendData(b, st, req)
			recvN(b, st, len(req))
		}
		_ = st.CloseSend()
	})
	b.Run("tcp-flow-per-request", func(b *testing.B) {
		for b.Loop() {
			st := open(b, teleproto.Protocol_PROTOCOL_TCP, echo)
			sendData(b, st, req)
			recvN(b, st, len(req))
			_ = st.CloseSend()
			if _, err := recvAll(st); err != nil {
				b.Fatalf("end: %v", err)
			}
		}
	})
	b.Run("udp-echo-1KiB", func(b *testing.B) {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := make([]byte, 64<<10)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				_, _ = pc.WriteTo(buf[:n], from)
			}
		}()
		defer func() { pc.Close(); <-done }()
		st := open(b, teleproto.Protocol_PROTOCOL_UDP, netip.MustParseAddrPort(pc.LocalAddr().String()))
		for b.Loop() {
			sendData(b, st, req)
			recvN(b, st, len(req))
		}
		_ = st.CloseSend()
		if _, err := recvAll(st); err != nil && !errors.Is(err, io.EOF) {
			b.Fatalf("end: %v", err)
		}
	})
}
