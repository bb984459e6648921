package manager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
	"github.com/kubectl-tele/kubectl-tele/pkg/tunnel"
)

// A UDP datagram can be up to 64 KiB; a smaller buffer would truncate it.
const udpBufSize = 64 << 10

// UDP buffers are pooled (TCP flows use tunnel.ReadBuffer). Sending a buffer
// and then reusing it is safe because gRPC marshals the message before Send
// returns and the server installs no stats handler that could keep it.
var udpBufPool = sync.Pool{New: func() any { b := make([]byte, udpBufSize); return &b }}

// errClientClosed: the laptop sent Close (its side of the flow failed), or
// ended a UDP flow.
var errClientClosed = errors.New("closed by client")

// Tunnel implements teleproto.ManagerServer.
func (s *Server) Tunnel(stream teleproto.Manager_TunnelServer) error {
	ctx := stream.Context()
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return status.Error(codes.InvalidArgument, "tunnel: stream ended before its Open message")
	}
	if err != nil {
		return err
	}
	open := first.GetOpen()
	if open == nil {
		return status.Error(codes.InvalidArgument, "tunnel: the first message must be a TunnelOpen")
	}
	ss, err := s.lookup(ctx, open.GetSessionId())
	if err != nil {
		return err
	}
	var network string
	var dest, src netip.AddrPort
	switch k := open.GetKind().(type) {
	case *teleproto.TunnelOpen_DialId:
		// The laptop answers an agent's intercepted connection.
		return s.answerDial(stream, ss, k.DialId)
	case *teleproto.TunnelOpen_Destination:
		if network, dest, src, err = k.Destination.Flow(); err != nil {
			return status.Errorf(codes.InvalidArgument, "tunnel: %v", err)
		}
	default:
		return status.Error(codes.InvalidArgument, "tunnel: the TunnelOpen names neither a destination nor a dial")
	}
	log := s.log.With("session", ss.id, "proto", network, "dest", dest.String())
	if src.IsValid() {
		log = log.With("src", src.String())
	}

	// The flow ends with its stream or its session.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stopSession := context.AfterFunc(ss.ctx, func() { cancel(context.Cause(ss.ctx)) })
	defer stopSession()

	d := net.Dialer{Timeout: s.cfg.DialTimeout}
	conn, err := d.DialContext(ctx, network, dest.String())
	if err != nil {
		if ctx.Err() != nil {
			return flowEnded(ctx)
		}
		log.DebugContext(ctx, "tunnel dial failed", "err", err)
		_ = tunnel.FailWith(stream, err, teleproto.CloseReason_CLOSE_REASON_UNSPECIFIED)
		return status.Errorf(codes.Unavailable, "dial %s %s: %v", network, dest, err)
	}
	defer conn.Close()
	if network == "tcp" {
		// The laptop holds its application's SYN until now.
		if err := stream.Send(teleproto.Ack()); err != nil {
			return err
		}
	}
	// Closing the connection is what unblocks its Read when the flow ends
	// early (the laptop cancelled it, or its session ended): with a reset,
	// as the flow broke.
	stopConn := context.AfterFunc(ctx, func() {
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		conn.Close()
	})
	defer stopConn()

	if network == "tcp" {
		err = s.tcpFlow(ctx, stream, conn.(*net.TCPConn), dest)
	} else {
		err = s.udpFlow(ctx, stream, conn.(*net.UDPConn), dest, log)
	}
	if err != nil {
		log.DebugContext(ctx, "tunnel ended", "err", err)
	}
	return err
}

// receive runs recv on a goroutine owned by the Server rather than by the
// handler: gRPC ends a stream (unblocking Recv) only once its handler has
// returned, and the handler must return as soon as the destination closes.
// The result arrives on the returned channel before conn is closed, so a Read
// that fails because of that close can find out why.
func (s *Server) receive(conn net.Conn, recv func() error) <-chan error {
	errc := make(chan error, 1)
	s.flows.Add(1)
	go func() {
		defer s.flows.Done()
		err := recv()
		errc <- err
		if err != nil {
			conn.Close()
		}
	}()
	return errc
}

// tcpFlow copies between stream and conn. The client's CloseSend shuts the
// connection's write side; the destination's EOF ends the stream once what
// it sent has been forwarded.
func (s *Server) tcpFlow(ctx context.Context, stream teleproto.Manager_TunnelServer, conn *net.TCPConn, dest netip.AddrPort) error {
	recvErr := s.receive(conn, func() error {
		for {
			m, err := tunnel.Recv(stream)
			if errors.Is(err, io.EOF) {
				if err := conn.CloseWrite(); err != nil {
					return status.Errorf(codes.Unavailable, "half-close tcp %s: %v", dest, err)
				}
				return nil
			}
			if err != nil {
				// The stream broke, or the laptop cancelled the flow:
				// reset ours rather than end it cleanly.
				_ = conn.SetLinger(0)
				return err
			}
			switch x := m.GetMsg().(type) {
			case *teleproto.Frame_Data:
				_, err := conn.Write(x.Data)
				tunnel.Release(m)
				if err != nil {
					return status.Errorf(codes.Unavailable, "write to tcp %s: %v", dest, err)
				}
			case *teleproto.Frame_Close:
				// The laptop's side failed: reset ours rather than end cleanly.
				_ = conn.SetLinger(0)
				return errClientClosed
			default:
				return status.Error(codes.InvalidArgument, "tunnel: only data or close may follow the TunnelOpen")
			}
		}
	})

	rb := tunnel.NewReadBuffer()
	defer rb.Free()
	for {
		buf := rb.Bytes()
		n, err := conn.Read(buf)
		if n > 0 {
			if err := stream.Send(tunnel.Data(buf[:n])); err != nil {
				return err
			}
		}
		rb.Adapt(n)
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		return readFailed(ctx, recvErr, fmt.Sprintf("tcp %s", dest), err)
	}
}

// udpFlow forwards one datagram per message each way until the client ends
// the stream or no datagram has passed either way for the UDP idle timeout.
func (s *Server) udpFlow(ctx context.Context, stream teleproto.Manager_TunnelServer, conn *net.UDPConn, dest netip.AddrPort, log *slog.Logger) error {
	idle := s.cfg.UDPIdleTimeout
	var last atomic.Int64 // unix nanoseconds of the last datagram either way
	last.Store(time.Now().UnixNano())

	recvErr := s.receive(conn, func() error {
		for {
			m, err := tunnel.Recv(stream)
			if errors.Is(err, io.EOF) {
				return errClientClosed
			}
			if err != nil {
				return err
			}
			switch x := m.GetMsg().(type) {
			case *teleproto.Frame_Data:
				last.Store(time.Now().UnixNano())
				// Datagrams may be lost; a refused or failed send is not the
				// end of the flow, as it would not be for a pod's socket.
				_, err := conn.Write(x.Data)
				tunnel.Release(m)
				if err != nil {
					log.DebugContext(ctx, "udp send", "err", err)
				}
			case *teleproto.Frame_Close:
				return errClientClosed
			default:
				return status.Error(codes.InvalidArgument, "tunnel: only data or close may follow the TunnelOpen")
			}
		}
	})

	bp := udpBufPool.Get().(*[]byte)
	defer udpBufPool.Put(bp)
	buf := *bp
	for {
		deadline := time.Unix(0, last.Load()).Add(idle)
		if !time.Now().Before(deadline) {
			return nil
		}
		if err := conn.SetReadDeadline(deadline); err != nil {
			return readFailed(ctx, recvErr, fmt.Sprintf("udp %s", dest), err)
		}
		n, err := conn.Read(buf)
		if err == nil {
			last.Store(time.Now().UnixNano())
			if err := stream.Send(tunnel.Data(buf[:n])); err != nil {
				return err
			}
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue // the loop head decides whether the flow is idle
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			log.DebugContext(ctx, "udp destination refused a datagram")
			continue
		}
		return readFailed(ctx, recvErr, fmt.Sprintf("udp %s", dest), err)
	}
}

// readFailed says why reading from the destination failed: the flow ended,
// the receiving side failed (and closed the connection), or the read itself.
func readFailed(ctx context.Context, recvErr <-chan error, what string, err error) error {
	select {
	case rerr := <-recvErr:
		if errors.Is(rerr, errClientClosed) {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	default:
	}
	if ctx.Err() != nil {
		return flowEnded(ctx)
	}
	return status.Errorf(codes.Unavailable, "read from %s: %v", what, err)
}

// flowEnded is the status for a flow whose context ended.
func flowEnded(ctx context.Context) error {
	cause := context.Cause(ctx)
	if errors.Is(cause, errSessionEnded) {
		return status.Errorf(codes.NotFound, "%v; reconnect", cause)
	}
	return status.FromContextError(ctx.Err()).Err()
}
