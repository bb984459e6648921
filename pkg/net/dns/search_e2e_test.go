package dns

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// udpFlow is one client's flow on a shared UDP socket, as the netstack hands
// the daemon one net.Conn per flow.
type udpFlow struct {
	*net.UDPConn
	peer *net.UDPAddr
}

func (f udpFlow) Read(b []byte) (int, error) {
	for {
		n, from, err := f.ReadFromUDP(b)
		if err != nil || from.String() == f.peer.String() {
			return n, err
		}
	}
}

func (f udpFlow) Write(b []byte) (int, error) { return f.WriteToUDP(b, f.peer) }
func (f udpFlow) RemoteAddr() net.Addr        { return f.peer }

// startServer serves s on loopback sockets: TCP connections through
// ServeTCP, and the UDP flow of the one client socket udpClient through
// ServeUDP. It returns the TCP address and the UDP client's connection.
func startServer(t *testing.T, s *Server) (tcpAddr string, udpClient *dns.Conn) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	context.AfterFunc(ctx, func() { ln.Close() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { defer c.Close(); _ = s.ServeTCP(ctx, c) })
		}
	})

	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	cli, err := net.DialUDP("udp", nil, srv.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	wg.Go(func() {
		defer srv.Close()
		_ = s.ServeUDP(ctx, udpFlow{srv, cli.LocalAddr().(*net.UDPAddr)})
	})
	return ln.Addr().String(), &dns.Conn{Conn: cli}
}

// TestServeSearchEndToEnd asks a running server, with a DNS client over UDP
// and TCP, every name form of a Service and of a StatefulSet pod, and checks
// what a program on the laptop sees: an answer, never SERVFAIL, the same
// answer for A as a pod gets and NODATA for AAAA of an IPv4-only name, and
// the laptop's own resolver not asked about any of them, whether it works
// (a name it answered would leak the query, and could be a wrong answer) or
// not (the SERVFAIL of issue 15).
func TestServeSearchEndToEnd(t *testing.T) {
	type form struct {
		q    string
		want string // the A record's address; "" for NXDOMAIN
	}
	clusterNames := []form{
		{"echo.", "10.96.0.10"},
		{"echo.demo.", "10.96.0.10"},
		{"echo.demo.svc.", "10.96.0.10"},
		{"echo.demo.svc.cluster.local.", "10.96.0.10"},
		{"Echo.Demo.SVC.cluster.local.", "10.96.0.10"},
		{"web.other.", "10.96.0.11"},
		{"web-0.web.", "10.244.1.5"},
		{"web-0.web.demo.", "10.244.1.5"},
		{"web-0.web.demo.svc.", "10.244.1.5"},
		{"web-0.web.demo.svc.cluster.local.", "10.244.1.5"},
		{"db.other.", "10.244.1.7"}, // the namespace's pod, not other's Service
		// What a stub with our search list sends for web-0.web after
		// trying the first search domain: the cluster's NXDOMAIN, so that
		// the stub goes on, and nothing upstream.
		{"web-0.web.svc.cluster.local.", ""},
		{"web-0.web.cluster.local.", ""},
	}
	for _, upstreamWorks := range []bool{true, false} {
		name := "upstream works"
		if !upstreamWorks {
			name = "upstream down"
		}
		t.Run(name, func(t *testing.T) {
			cluster := newFake(t, 5, clusterRecords...)
			upstream := newFake(t, 5, upstreamRecords...)
			if !upstreamWorks {
				upstream.err = errDown
			}
			s := newTestServer(t, cluster, upstream, func(c *Config) { c.CacheSize = 100 }) // cached, as in the daemon
			tcpAddr, udp := startServer(t, s)
			tcp := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
			udpClient := &dns.Client{Timeout: 5 * time.Second}

			for _, f := range clusterNames {
				for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
					for _, proto := range []string{"udp", "tcp"} {
						q := new(dns.Msg)
						q.SetQuestion(f.q, qtype)
						q.SetEdns0(1232, false)
						var (
							r   *dns.Msg
							err error
						)
						if proto == "udp" {
							r, _, err = udpClient.ExchangeWithConn(q, udp)
						} else {
							r, _, err = tcp.Exchange(q, tcpAddr)
						}
						what := proto + " " + dns.Type(qtype).String() + " " + f.q
						if err != nil {
							t.Errorf("%s: %v", what, err)
							continue
						}
						checkClusterAnswer(t, what, r, f.q, qtype, f.want)
					}
				}
			}
			if got := upstream.askedList(); len(got) > 0 {
				t.Errorf("the laptop's resolver was asked about cluster names: %q", got)
			}

			// A name the cluster does not have goes to the laptop's
			// resolver, once the cluster has said so; when that fails the
			// answer is SERVFAIL: the name may well exist, and a stub that
			// gets SERVFAIL tries its next server or search domain.
			q := new(dns.Msg)
			q.SetQuestion("example.com.", dns.TypeA)
			r, _, err := tcp.Exchange(q, tcpAddr)
			if err != nil {
				t.Fatal(err)
			}
			want := dns.RcodeSuccess
			if !upstreamWorks {
				want = dns.RcodeServerFailure
			}
			if r.Rcode != want {
				t.Errorf("example.com. A: %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[want])
			}
			if got := upstream.askedList(); !slices.Equal(got, []string{"example.com. A"}) {
				t.Errorf("upstream asked %q, want example.com. A only", got)
			}
		})
	}
}

func checkClusterAnswer(t *testing.T, what string, r *dns.Msg, qname string, qtype uint16, wantA string) {
	t.Helper()
	if len(r.Question) != 1 || r.Question[0].Name != qname {
		t.Errorf("%s: question %v, want the client's %s", what, r.Question, qname)
	}
	if wantA == "" {
		if r.Rcode != dns.RcodeNameError || len(r.Answer) > 0 {
			t.Errorf("%s: %s %v, want NXDOMAIN", what, dns.RcodeToString[r.Rcode], r.Answer)
		}
		return
	}
	if r.Rcode != dns.RcodeSuccess {
		t.Errorf("%s: %s, want NOERROR", what, dns.RcodeToString[r.Rcode])
		return
	}
	if qtype == dns.TypeAAAA {
		if len(r.Answer) > 0 {
			t.Errorf("%s: %v, want NODATA (the name has only A records)", what, r.Answer)
		}
		return
	}
	if len(r.Answer) != 1 {
		t.Errorf("%s: answer %v, want one A record", what, r.Answer)
		return
	}
	a, ok := r.Answer[0].(*dns.A)
	if !ok || a.A.String() != wantA || !strings.EqualFold(a.Hdr.Name, qname) {
		t.Errorf("%s: answer %v, want %s A %s", what, r.Answer[0], qname, wantA)
	}
}

// TestSearchClusterFailure: when the cluster cannot be asked, a short name
// is SERVFAIL and the laptop's resolver is not asked (the name may be the
// cluster's); a search domain that fails does not hide a later one that
// answers, as glibc goes on after a SERVFAIL.
func TestSearchClusterFailure(t *testing.T) {
	upstream := newFake(t, 5, upstreamRecords...)
	down := &fakeDNS{err: errDown}
	s := newTestServer(t, down, upstream, nil)
	if r := s.Answer(context.Background(), query("web-0.web.", dns.TypeA)); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("cluster down: %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
	if got := upstream.askedList(); len(got) > 0 {
		t.Errorf("upstream asked %q while the cluster was down", got)
	}

	cluster := newFake(t, 5, clusterRecords...)
	flaky := func(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
		if strings.HasSuffix(q.Question[0].Name, ".demo.svc.cluster.local.") {
			return nil, errors.New("timeout")
		}
		return cluster.exchange(ctx, q)
	}
	s = newTestServer(t, nil, upstream, func(c *Config) { c.Cluster = flaky })
	r := s.Answer(context.Background(), query("web.other.", dns.TypeA))
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("first search domain failing: %s %v, want the second's answer", dns.RcodeToString[r.Rcode], r.Answer)
	}
}
