package dns

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeDNS is a backend with a fixed zone that records what it was asked.
type fakeDNS struct {
	zone  map[string][]dns.RR // lower-case owner -> records
	soa   *dns.SOA            // authority for negative answers
	err   error
	gate  chan struct{} // when non-nil, each exchange waits for it
	calls atomic.Int32

	mu    sync.Mutex
	asked []string // "name TYPE"
}

func newFake(t testing.TB, soaMin uint32, records ...string) *fakeDNS {
	t.Helper()
	f := &fakeDNS{zone: map[string][]dns.RR{}}
	for _, s := range records {
		rr := mustRR(t, s)
		n := strings.ToLower(rr.Header().Name)
		f.zone[n] = append(f.zone[n], rr)
	}
	f.soa = mustRR(t, "zone. 60 IN SOA ns.zone. hostmaster.zone. 1 7200 1800 86400 0").(*dns.SOA)
	f.soa.Minttl = soaMin
	return f
}

func mustRR(t testing.TB, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("parse RR %q: %v", s, err)
	}
	return rr
}

func (f *fakeDNS) exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
	f.calls.Add(1)
	qq := q.Question[0]
	f.mu.Lock()
	f.asked = append(f.asked, qq.Name+" "+dns.Type(qq.Qtype).String())
	f.mu.Unlock()
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if f.err != nil {
		return nil, f.err
	}
	m := new(dns.Msg)
	m.SetReply(q)
	name := strings.ToLower(qq.Name)
	rrs, ok := f.zone[name]
	if !ok {
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{dns.Copy(f.soa)}
		return m, nil
	}
	// Follow one CNAME, as a recursive server would.
	for _, rr := range rrs {
		if rr.Header().Rrtype == qq.Qtype || rr.Header().Rrtype == dns.TypeCNAME {
			m.Answer = append(m.Answer, dns.Copy(rr))
		}
		if c, ok := rr.(*dns.CNAME); ok && qq.Qtype != dns.TypeCNAME {
			for _, rr2 := range f.zone[strings.ToLower(c.Target)] {
				if rr2.Header().Rrtype == qq.Qtype {
					m.Answer = append(m.Answer, dns.Copy(rr2))
				}
			}
		}
	}
	if len(m.Answer) == 0 {
		m.Ns = []dns.RR{dns.Copy(f.soa)}
	}
	return m, nil
}

func (f *fakeDNS) askedList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.asked...)
}

func (f *fakeDNS) reset() {
	f.mu.Lock()
	f.asked = nil
	f.mu.Unlock()
	f.calls.Store(0)
}

var errDown = errors.New("manager unreachable")

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func query(name string, qtype uint16) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(name, qtype)
	return q
}

// clusterRecords is the cluster's zone used across tests.
var clusterRecords = []string{
	"echo.demo.svc.cluster.local. 30 IN A 10.96.0.10",
	"web.other.svc.cluster.local. 30 IN A 10.96.0.11",
	"ext.demo.svc.cluster.local. 30 IN CNAME example.org.",
	"example.org. 30 IN A 93.184.216.34",
	"10.0.96.10.in-addr.arpa. 30 IN PTR echo.demo.svc.cluster.local.",
	"a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa. 30 IN PTR echo.demo.svc.cluster.local.",
	"echo.demo.svc. 30 IN A 10.96.0.99", // must never be asked: wrong name
	// StatefulSet web (headless Service web) in demo.
	"web-0.web.demo.svc.cluster.local. 30 IN A 10.244.1.5",
	// A pod db of a headless Service other in demo, and a Service db in
	// the namespace other: "db.other" is the pod, as in a pod of demo.
	"db.other.demo.svc.cluster.local. 30 IN A 10.244.1.7",
	"db.other.svc.cluster.local. 30 IN A 10.96.0.12",
}

var upstreamRecords = []string{
	"example.com. 300 IN A 1.2.3.4",
	"printer. 300 IN A 192.168.1.5",
	"foo.bar.baz. 300 IN A 5.6.7.8",
	"v.w.x.y.z.example. 300 IN A 5.6.7.9",
	"web-0.web. 300 IN A 203.0.113.1", // a leak if ever answered
	"localhost. 300 IN A 127.0.0.1",
	"8.8.8.8.in-addr.arpa. 300 IN PTR dns.google.",
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
