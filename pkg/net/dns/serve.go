package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// ServeUDP answers the queries of one UDP flow: each Read of conn is one
// query datagram and each Write one response. Queries are answered
// concurrently (at most Config.MaxInFlight at a time); responses larger than
// the client can take are truncated with the TC bit set, so the client
// retries over TCP. It returns nil when the flow has been idle for
// Config.IdleTimeout or conn is closed, ctx.Err() when ctx is done, and only
// after every query it started has been answered or abandoned. The caller
// closes conn.
func (s *Server) ServeUDP(ctx context.Context, conn net.Conn) error {
	return s.serve(ctx, conn, "udp", maxUDPQuery, conn.Read, conn.Write)
}

// maxUDPQuery is the largest UDP query read whole; a longer one is cut
// short and answered FORMERR. Queries are small (miekg/dns's own server reads
// 512 bytes by default), and each UDP flow keeps its buffer for its idle
// time: a stub resolver's lookup is one flow, so a busy laptop has hundreds,
// and at 64 KiB each they were most of the daemon's heap under load.
const maxUDPQuery = 4096

// ServeTCP answers the queries of one TCP connection, framed as RFC 1035
// section 4.2.2 says (a two-byte length before each message). Several
// queries may be sent, and pipelined; responses may come back out of order
// (RFC 7766 section 6.2.1.1), matched to queries by ID. Returns as ServeUDP
// does; a broken frame ends the connection with an error.
func (s *Server) ServeTCP(ctx context.Context, conn net.Conn) error {
	// miekg/dns's Conn frames a stream (its Read and Write take and give
	// one whole message) as long as conn is not a net.PacketConn, which a
	// flow of the TUN's TCP stack is not.
	framed := &dns.Conn{Conn: conn}
	return s.serve(ctx, conn, "tcp", dns.MaxMsgSize, framed.Read, framed.Write)
}

// serve reads one query per call of read and writes one packed response per
// call of write: conn's own Read and Write for datagrams, a dns.Conn's for a
// stream.
func (s *Server) serve(ctx context.Context, conn net.Conn, proto string, bufSize int, read, write func([]byte) (int, error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Unblock Read when ctx ends. A deadline in the past, rather than
	// Close, because conn is the caller's.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	var (
		wg      sync.WaitGroup
		writeMu sync.Mutex
		sem     = make(chan struct{}, s.cfg.MaxInFlight)
		buf     = make([]byte, bufSize)
	)
	defer wg.Wait()
	log := s.log.With("proto", proto, "client", addrString(conn.RemoteAddr()))
	for {
		// Set the deadline before checking ctx: see the AfterFunc above.
		_ = conn.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout)) // wall clock: Config.Now may be fake
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read dns query from %s: %w", addrString(conn.RemoteAddr()), err)
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		pkt := append([]byte(nil), buf[:n]...)
		wg.Go(func() {
			defer func() { <-sem }()
			m, maxSize := s.handle(ctx, pkt, proto)
			if m == nil {
				return
			}
			m.Truncate(maxSize)
			b, err := m.Pack()
			if err != nil {
				log.Debug("pack dns response", "id", m.Id, "err", err)
				return
			}
			writeMu.Lock()
			_, err = write(b)
			writeMu.Unlock()
			if err != nil && ctx.Err() == nil {
				log.Debug("write dns response", "err", err)
			}
		})
	}
}

// handle decodes and answers one raw query. It returns nil when nothing
// should be sent back (responses, garbage too short to carry an ID), and
// the largest response the client accepts.
func (s *Server) handle(ctx context.Context, pkt []byte, proto string) (*dns.Msg, int) {
	q := new(dns.Msg)
	if err := q.Unpack(pkt); err != nil {
		// Answer FORMERR when we can at least tell it is a query and whose.
		if len(pkt) < 12 || pkt[2]&0x80 != 0 {
			return nil, 0
		}
		m := new(dns.Msg)
		m.Id = binary.BigEndian.Uint16(pkt)
		m.Response = true
		m.Opcode = int(pkt[2]>>3) & 0xF
		m.Rcode = dns.RcodeFormatError
		return m, dns.MinMsgSize
	}
	if q.Response {
		return nil, 0 // never answer answers: that is how loops start
	}
	maxSize := dns.MaxMsgSize
	if proto == "udp" {
		maxSize = udpResponseSize(q)
	}
	return s.Answer(ctx, q), maxSize
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
