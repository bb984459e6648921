package manager

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
	"github.com/kubectl-tele/kubectl-tele/pkg/tunnel"
)

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

	opts := []tunnel.PipeOption{tunnel.ServerStream(&s.flows)}
	if network == "udp" {
		opts = append(opts, tunnel.Datagrams(s.cfg.UDPIdleTimeout, func(err error) {
			// Lost, as a pod's socket would lose it: not the flow's end.
			log.DebugContext(ctx, "udp datagram lost", "err", err)
		}))
	}
	// The client's CloseSend shuts conn's write side; conn's EOF ends the
	// stream once what it sent is forwarded.
	err = tunnel.Pipe(ctx, conn, stream, nil, opts...)
	switch {
	case ctx.Err() != nil:
		err = flowEnded(ctx)
	case err == nil:
		return nil
	case status.Code(err) == codes.Unknown:
		// The destination's, or the laptop's Close: the flow broke.
		err = status.Errorf(codes.Unavailable, "%s %s: %v", network, dest, err)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // a reset, not a clean end a truncated answer could pass for
	}
	log.DebugContext(ctx, "tunnel ended", "err", err)
	return err
}

// flowEnded is the status for a flow whose context ended.
func flowEnded(ctx context.Context) error {
	cause := context.Cause(ctx)
	if errors.Is(cause, errSessionEnded) {
		return status.Errorf(codes.NotFound, "%v; reconnect", cause)
	}
	return status.FromContextError(ctx.Err()).Err()
}
