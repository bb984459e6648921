package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/miekg/dns"
)

// The loopback server answers over UDP and TCP on one port, truncates what
// a UDP client cannot take, and once stopped leaves the port refusing at
// once, which is what makes a dead daemon cost nothing on macOS.
func TestServeLoopback(t *testing.T) {
	records := []string{"web.demo.svc.cluster.local. 30 IN A 10.96.0.7"}
	for i := range 40 {
		records = append(records, fmt.Sprintf("big.demo.svc.cluster.local. 30 IN A 10.96.1.%d", i))
	}
	f := newFake(t, 30, records...)
	s := NewServer(Config{ClusterDomain: "cluster.local", Namespace: "demo", Cluster: f.exchange})

	pc, l, err := ListenLoopback()
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	if l.Addr().String() != addr {
		t.Fatalf("UDP on %s, TCP on %s: want one port", addr, l.Addr())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.ServeLoopback(ctx, pc, l) }()

	ask := func(proto, name string) (*dns.Msg, error) {
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		c := &dns.Client{Net: proto}
		r, _, err := c.Exchange(q, addr)
		return r, err
	}
	for _, proto := range []string{"udp", "tcp"} {
		r, err := ask(proto, "web.demo.")
		if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "10.96.0.7" {
			t.Errorf("%s: web.demo: %v %v", proto, r, err)
		}
	}
	// 40 answers do not fit 512 bytes: truncated over UDP, whole over TCP.
	if r, err := ask("udp", "big.demo."); err != nil || !r.Truncated {
		t.Errorf("udp: big answer not truncated: %v %v", r, err)
	}
	if r, err := ask("tcp", "big.demo."); err != nil || r.Truncated || len(r.Answer) != 40 {
		t.Errorf("tcp: big answer: %d records, truncated %v, %v", len(r.Answer), r.Truncated, err)
	}

	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("ServeLoopback after cancel: %v", err)
	}
	// Nothing listens now: TCP is refused, UDP gets port unreachable.
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Error("TCP still accepted after the server stopped")
	}
	if _, err := ask("udp", "web.demo."); err == nil {
		t.Error("UDP still answered after the server stopped")
	}
}
