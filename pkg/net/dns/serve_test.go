package dns

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// bigCluster has a Service with more A records than fit in 512 bytes.
func bigCluster(t testing.TB) *fakeDNS {
	recs := append([]string(nil), clusterRecords...)
	for i := range 100 {
		recs = append(recs, fmt.Sprintf("big.demo.svc.cluster.local. 30 IN A 10.244.0.%d", i+1))
	}
	return newFake(t, 5, recs...)
}

func pack(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatalf("pack: %v", err)
	}
	return b
}

func TestServeUDPTruncation(t *testing.T) {
	tests := []struct {
		name      string
		edns      uint16 // 0 = no EDNS
		wantTC    bool
		wantLimit int
	}{
		{"no EDNS: 512 bytes", 0, true, 512},
		{"EDNS 1232 still too small", 1232, true, 1232},
		{"EDNS below 512 counts as 512", 100, true, 512},
		{"EDNS 4096 fits", 4096, false, 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, bigCluster(t), nil, nil)
			client, server := net.Pipe()
			defer client.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			errc := make(chan error, 1)
			go func() { errc <- s.ServeUDP(ctx, server) }()

			q := query("big.", dns.TypeA)
			if tt.edns != 0 {
				q.SetEdns0(tt.edns, false)
			}
			if _, err := client.Write(pack(t, q)); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 65535)
			_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := client.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			if n > tt.wantLimit {
				t.Errorf("response is %d bytes, limit %d", n, tt.wantLimit)
			}
			r := new(dns.Msg)
			if err := r.Unpack(buf[:n]); err != nil {
				t.Fatalf("unpack response: %v", err)
			}
			if r.Id != q.Id || r.Truncated != tt.wantTC {
				t.Errorf("id %d TC %v, want id %d TC %v", r.Id, r.Truncated, q.Id, tt.wantTC)
			}
			if !tt.wantTC && len(r.Answer) != 100 {
				t.Errorf("%d answers, want 100", len(r.Answer))
			}
			if tt.edns != 0 && r.IsEdns0() == nil {
				t.Errorf("truncated response lost its OPT record")
			}
			cancel()
			if err := <-errc; err != context.Canceled {
				t.Errorf("ServeUDP after cancel = %v, want context.Canceled", err)
			}
		})
	}
}

func TestServeUDPIdleAndGarbage(t *testing.T) {
	s := newTestServer(t, newFake(t, 5, clusterRecords...), nil, func(c *Config) { c.IdleTimeout = 100 * time.Millisecond })
	client, server := net.Pipe()
	defer client.Close()
	errc := make(chan error, 1)
	go func() { errc <- s.ServeUDP(context.Background(), server) }()

	// 12 bytes of a query header with a bad question count: FORMERR, same ID.
	garbage := []byte{0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0}
	if _, err := client.Write(garbage); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	n, err := client.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf[:n]); err != nil {
		t.Fatalf("unpack: %v", err)
	}
	if r.Id != 0xbeef || r.Rcode != dns.RcodeFormatError {
		t.Errorf("garbage answered id %x rcode %s, want beef FORMERR", r.Id, dns.RcodeToString[r.Rcode])
	}
	// Too short to answer: dropped; then the flow goes idle and ends.
	if _, err := client.Write([]byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("idle ServeUDP = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ServeUDP did not end when idle")
	}
}

func TestServeTCPTwoQueries(t *testing.T) {
	s := newTestServer(t, newFake(t, 5, clusterRecords...), newFake(t, 5, upstreamRecords...), nil)
	client, server := net.Pipe()
	errc := make(chan error, 1)
	go func() { errc <- s.ServeTCP(context.Background(), server) }()

	q1, q2 := query("echo.", dns.TypeA), query("example.com.", dns.TypeA)
	q2.Id = q1.Id + 1
	var frames bytes.Buffer
	for _, q := range []*dns.Msg{q1, q2} {
		b := pack(t, q)
		_ = binary.Write(&frames, binary.BigEndian, uint16(len(b)))
		frames.Write(b)
	}
	// Both queries in one write, pipelined; written from a goroutine
	// because net.Pipe is synchronous and responses come back meanwhile.
	go func() { _, _ = client.Write(frames.Bytes()) }()

	want := map[uint16]string{q1.Id: "10.96.0.10", q2.Id: "1.2.3.4"}
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	for range 2 {
		var hdr [2]byte
		if _, err := io.ReadFull(client, hdr[:]); err != nil {
			t.Fatalf("read length: %v", err)
		}
		body := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(client, body); err != nil {
			t.Fatalf("read body: %v", err)
		}
		r := new(dns.Msg)
		if err := r.Unpack(body); err != nil {
			t.Fatalf("unpack: %v", err)
		}
		ip, ok := want[r.Id]
		if !ok {
			t.Fatalf("unexpected or repeated response id %d", r.Id)
		}
		delete(want, r.Id)
		if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != ip {
			t.Errorf("response %d answers %v, want %s", r.Id, r.Answer, ip)
		}
	}
	client.Close()
	if err := <-errc; err != nil {
		t.Errorf("ServeTCP after client closed = %v, want nil", err)
	}
}

func TestServeTCPNoTruncation(t *testing.T) {
	s := newTestServer(t, bigCluster(t), nil, nil)
	client, server := net.Pipe()
	defer client.Close()
	go func() { _ = s.ServeTCP(context.Background(), server) }()
	b := pack(t, query("big.", dns.TypeA))
	go func() { _, _ = client.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)) }()
	var hdr [2]byte
	if _, err := io.ReadFull(client, hdr[:]); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(client, body); err != nil {
		t.Fatal(err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(body); err != nil {
		t.Fatal(err)
	}
	if r.Truncated || len(r.Answer) != 100 {
		t.Errorf("TCP response TC=%v with %d answers, want all 100", r.Truncated, len(r.Answer))
	}
}

func TestServeTCPBrokenFrame(t *testing.T) {
	s := newTestServer(t, newFake(t, 5), nil, nil)
	client, server := net.Pipe()
	errc := make(chan error, 1)
	go func() { errc <- s.ServeTCP(context.Background(), server) }()
	_, _ = client.Write([]byte{0, 40, 1, 2, 3}) // says 40 bytes, sends 3
	client.Close()
	if err := <-errc; err == nil {
		t.Error("ServeTCP accepted a truncated frame")
	}
}

// memConn is a net.Conn that reads from a fixed list of reads, then EOF,
// and records writes. Deadlines are ignored.
type memConn struct {
	mu     sync.Mutex
	reads  [][]byte
	writes [][]byte
}

func (c *memConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.reads) == 0 {
		return 0, io.EOF
	}
	n := copy(b, c.reads[0])
	if n < len(c.reads[0]) {
		c.reads[0] = c.reads[0][n:]
	} else {
		c.reads = c.reads[1:]
	}
	return n, nil
}

func (c *memConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = append(c.writes, append([]byte(nil), b...))
	return len(b), nil
}

func (c *memConn) Close() error                     { return nil }
func (c *memConn) LocalAddr() net.Addr              { return &net.UDPAddr{} }
func (c *memConn) RemoteAddr() net.Addr             { return &net.UDPAddr{} }
func (c *memConn) SetDeadline(time.Time) error      { return nil }
func (c *memConn) SetReadDeadline(time.Time) error  { return nil }
func (c *memConn) SetWriteDeadline(time.Time) error { return nil }

func fuzzSeeds(f *testing.F) {
	for _, q := range []*dns.Msg{
		query("echo.", dns.TypeA),
		query("web.other.", dns.TypeAAAA),
		query("big.demo.svc.cluster.local.", dns.TypeA),
		query("example.com.", dns.TypeMX),
		query("10.0.96.10.in-addr.arpa.", dns.TypePTR),
		query("ext.", dns.TypeCNAME),
	} {
		f.Add(pack(f, q))
		q.SetEdns0(4096, true)
		f.Add(pack(f, q))
	}
	f.Add([]byte{})
	f.Add([]byte{0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0})
}

func fuzzServer(f *testing.F) *Server {
	return newTestServer(f, bigCluster(f), newFake(f, 5, upstreamRecords...), func(c *Config) { c.CacheSize = 16 })
}

func FuzzAnswer(f *testing.F) {
	fuzzSeeds(f)
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		q := new(dns.Msg)
		if err := q.Unpack(data); err != nil {
			return
		}
		r := s.Answer(context.Background(), q)
		if r == nil {
			t.Fatal("Answer returned nil")
		}
		if r.Id != q.Id || !r.Response {
			t.Fatalf("reply id %d response %v to query id %d", r.Id, r.Response, q.Id)
		}
		r.Truncate(dns.MaxMsgSize)
		if _, err := r.Pack(); err != nil {
			t.Fatalf("reply does not pack: %v\n%v", err, r)
		}
	})
}

func FuzzServeUDP(f *testing.F) {
	fuzzSeeds(f)
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &memConn{reads: [][]byte{data}}
		if err := s.ServeUDP(context.Background(), c); err != nil {
			t.Fatalf("ServeUDP: %v", err)
		}
		for _, w := range c.writes {
			if len(w) > 4096 {
				t.Fatalf("%d-byte datagram", len(w))
			}
			if err := new(dns.Msg).Unpack(w); err != nil {
				t.Fatalf("response does not unpack: %v", err)
			}
		}
	})
}

func FuzzServeTCP(f *testing.F) {
	fuzzSeeds(f)
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		// The fuzzer's bytes are a TCP stream, frames and all.
		c := &memConn{reads: [][]byte{data}}
		_ = s.ServeTCP(context.Background(), c) // broken frames are errors, not panics
		for _, w := range c.writes {
			if len(w) < 2 || int(binary.BigEndian.Uint16(w)) != len(w)-2 {
				t.Fatalf("bad frame of %d bytes", len(w))
			}
			if err := new(dns.Msg).Unpack(w[2:]); err != nil {
				t.Fatalf("response does not unpack: %v", err)
			}
		}
	})
}
