package manager

import (
	"context"

	"github.com/miekg/dns"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// LookupDNS implements teleproto.ManagerServer: it asks the cluster DNS server
// over UDP, and again over TCP if the answer was truncated.
func (s *Server) LookupDNS(ctx context.Context, req *teleproto.DNSRequest) (*teleproto.DNSResponse, error) {
	ss, err := s.lookup(ctx, req.GetSessionId())
	if err != nil {
		return nil, err
	}
	q := new(dns.Msg)
	if err := q.Unpack(req.GetQuery()); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "dns query does not parse: %v", err)
	}
	if len(q.Question) == 0 {
		return nil, status.Error(codes.InvalidArgument, "dns query has no question")
	}
	// The lookup ends with the session too.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(ss.ctx, func() { cancel(context.Cause(ss.ctx)) })
	defer stop()

	server := s.resolver.Nameserver
	r, err := s.exchange(ctx, "udp", q, server)
	if err == nil && r.Truncated {
		r, err = s.exchange(ctx, "tcp", q, server)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, flowEnded(ctx)
		}
		s.log.DebugContext(ctx, "dns lookup failed", "session", ss.id, "question", q.Question[0].String(), "server", server, "err", err)
		return nil, status.Errorf(codes.Unavailable, "ask cluster DNS server %s about %s: %v", server, q.Question[0].Name, err)
	}
	answer, err := r.Pack()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "pack answer from %s about %s: %v", server, q.Question[0].Name, err)
	}
	return &teleproto.DNSResponse{Answer: answer}, nil
}

func (s *Server) exchange(ctx context.Context, network string, q *dns.Msg, server string) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: s.cfg.DialTimeout}
	r, _, err := c.ExchangeContext(ctx, q, server)
	return r, err
}
