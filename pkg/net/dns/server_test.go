package dns

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/miekg/dns"
)

func newTestServer(t testing.TB, cluster, upstream *fakeDNS, mod func(*Config)) *Server {
	t.Helper()
	cfg := Config{
		ClusterDomain: "cluster.local",
		Namespace:     "demo",
		ReverseCIDRs:  []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("fd00:10:96::/112")},
		CacheSize:     -1,
	}
	if cluster != nil {
		cfg.Cluster = cluster.exchange
	}
	if upstream != nil {
		cfg.Upstream = upstream.exchange
	}
	if mod != nil {
		mod(&cfg)
	}
	return NewServer(cfg)
}

func TestNameRules(t *testing.T) {
	tests := []struct {
		name         string
		q            string
		qtype        uint16
		wantCluster  []string
		wantUpstream []string
		wantRcode    int
		wantAnswer   []string // records as strings, in order
	}{
		{
			name:        "full cluster name goes to the cluster as is",
			q:           "echo.demo.svc.cluster.local.",
			qtype:       dns.TypeA,
			wantCluster: []string{"echo.demo.svc.cluster.local. A"},
			wantAnswer:  []string{"echo.demo.svc.cluster.local.\t30\tIN\tA\t10.96.0.10"},
		},
		{
			name:        "mixed case keeps the client's spelling in the question",
			q:           "Echo.Demo.SVC.Cluster.Local.",
			qtype:       dns.TypeA,
			wantCluster: []string{"echo.demo.svc.cluster.local. A"},
			wantAnswer:  []string{"echo.demo.svc.cluster.local.\t30\tIN\tA\t10.96.0.10"},
		},
		{
			name:        "unknown cluster name is NXDOMAIN without asking upstream",
			q:           "nope.demo.svc.cluster.local.",
			qtype:       dns.TypeA,
			wantCluster: []string{"nope.demo.svc.cluster.local. A"},
			wantRcode:   dns.RcodeNameError,
		},
		{
			name:        "bare label is a service of the connected namespace",
			q:           "echo.",
			qtype:       dns.TypeA,
			wantCluster: []string{"echo.demo.svc.cluster.local. A"},
			wantAnswer:  []string{"echo.\t30\tIN\tA\t10.96.0.10"},
		},
		{
			name:  "two labels are service.namespace after the namespace's own search domain",
			q:     "web.other.",
			qtype: dns.TypeA,
			wantCluster: []string{"web.other.demo.svc.cluster.local. A",
				"web.other.svc.cluster.local. A", "web.other.cluster.local. A"},
			wantAnswer: []string{"web.other.\t30\tIN\tA\t10.96.0.11"},
		},
		{
			name:  "service.namespace.svc is found with the last search domain",
			q:     "echo.demo.svc.",
			qtype: dns.TypeA,
			wantCluster: []string{"echo.demo.svc.demo.svc.cluster.local. A",
				"echo.demo.svc.svc.cluster.local. A", "echo.demo.svc.cluster.local. A"},
			wantAnswer: []string{"echo.demo.svc.\t30\tIN\tA\t10.96.0.10"},
		},
		{
			name:        "CNAME chain keeps its target",
			q:           "ext.",
			qtype:       dns.TypeA,
			wantCluster: []string{"ext.demo.svc.cluster.local. A"},
			wantAnswer: []string{
				"ext.\t30\tIN\tCNAME\texample.org.",
				"example.org.\t30\tIN\tA\t93.184.216.34",
			},
		},
		{
			name:        "rewritten name that exists without the type is NODATA, not upstream",
			q:           "echo.",
			qtype:       dns.TypeAAAA,
			wantCluster: []string{"echo.demo.svc.cluster.local. AAAA"},
		},
		{
			name:  "two-label public name falls back to upstream with the original name",
			q:     "example.com.",
			qtype: dns.TypeA,
			wantCluster: []string{"example.com.demo.svc.cluster.local. A",
				"example.com.svc.cluster.local. A", "example.com.cluster.local. A"},
			wantUpstream: []string{"example.com. A"},
			wantAnswer:   []string{"example.com.\t300\tIN\tA\t1.2.3.4"},
		},
		{
			name:  "bare label unknown to the cluster falls back to upstream",
			q:     "printer.",
			qtype: dns.TypeA,
			wantCluster: []string{"printer.demo.svc.cluster.local. A",
				"printer.svc.cluster.local. A", "printer.cluster.local. A"},
			wantUpstream: []string{"printer. A"},
			wantAnswer:   []string{"printer.\t300\tIN\tA\t192.168.1.5"},
		},
		{
			name:  "unknown everywhere is upstream's NXDOMAIN",
			q:     "nothere.",
			qtype: dns.TypeA,
			wantCluster: []string{"nothere.demo.svc.cluster.local. A",
				"nothere.svc.cluster.local. A", "nothere.cluster.local. A"},
			wantUpstream: []string{"nothere. A"},
			wantRcode:    dns.RcodeNameError,
		},
		{
			name:  "three labels are searched in the cluster first, as in a pod",
			q:     "foo.bar.baz.",
			qtype: dns.TypeA,
			wantCluster: []string{"foo.bar.baz.demo.svc.cluster.local. A",
				"foo.bar.baz.svc.cluster.local. A", "foo.bar.baz.cluster.local. A"},
			wantUpstream: []string{"foo.bar.baz. A"},
			wantAnswer:   []string{"foo.bar.baz.\t300\tIN\tA\t5.6.7.8"},
		},
		{
			name:         "localhost is never a service",
			q:            "localhost.",
			qtype:        dns.TypeA,
			wantUpstream: []string{"localhost. A"},
			wantAnswer:   []string{"localhost.\t300\tIN\tA\t127.0.0.1"},
		},
		{
			name:        "StatefulSet pod by hostname.service is found in the namespace",
			q:           "web-0.web.",
			qtype:       dns.TypeA,
			wantCluster: []string{"web-0.web.demo.svc.cluster.local. A"},
			wantAnswer:  []string{"web-0.web.\t30\tIN\tA\t10.244.1.5"},
		},
		{
			name:        "StatefulSet pod's AAAA is the cluster's NODATA, never upstream's",
			q:           "web-0.web.",
			qtype:       dns.TypeAAAA,
			wantCluster: []string{"web-0.web.demo.svc.cluster.local. AAAA"},
		},
		{
			name:  "StatefulSet pod by hostname.service.namespace",
			q:     "web-0.web.demo.",
			qtype: dns.TypeA,
			wantCluster: []string{"web-0.web.demo.demo.svc.cluster.local. A",
				"web-0.web.demo.svc.cluster.local. A", "web-0.web.demo.cluster.local. A"},
			wantAnswer: []string{"web-0.web.demo.\t30\tIN\tA\t10.244.1.5"},
		},
		{
			name:        "a name the OS resolver completed with our first search domain is asked once",
			q:           "web-0.web.demo.svc.cluster.local.",
			qtype:       dns.TypeA,
			wantCluster: []string{"web-0.web.demo.svc.cluster.local. A"},
			wantAnswer:  []string{"web-0.web.demo.svc.cluster.local.\t30\tIN\tA\t10.244.1.5"},
		},
		{
			name:        "a name the OS resolver completed with another search domain is NXDOMAIN, not searched",
			q:           "web-0.web.svc.cluster.local.",
			qtype:       dns.TypeA,
			wantCluster: []string{"web-0.web.svc.cluster.local. A"},
			wantRcode:   dns.RcodeNameError,
		},
		{
			name:        "the namespace's search domain comes first: a pod of a headless Service over a Service of another namespace",
			q:           "db.other.",
			qtype:       dns.TypeA,
			wantCluster: []string{"db.other.demo.svc.cluster.local. A"},
			wantAnswer:  []string{"db.other.\t30\tIN\tA\t10.244.1.7"},
		},
		{
			name:  "five dots: asked as it is first, then searched",
			q:     "a.b.c.d.e.f.",
			qtype: dns.TypeA,
			wantCluster: []string{"a.b.c.d.e.f.demo.svc.cluster.local. A",
				"a.b.c.d.e.f.svc.cluster.local. A", "a.b.c.d.e.f.cluster.local. A"},
			wantUpstream: []string{"a.b.c.d.e.f. A"},
			wantRcode:    dns.RcodeNameError,
		},
		{
			name:         "five dots found upstream is not searched",
			q:            "v.w.x.y.z.example.",
			qtype:        dns.TypeA,
			wantUpstream: []string{"v.w.x.y.z.example. A"},
			wantAnswer:   []string{"v.w.x.y.z.example.\t300\tIN\tA\t5.6.7.9"},
		},
		{
			name:        "reverse lookup of a cluster IPv4 goes to the cluster",
			q:           "10.0.96.10.in-addr.arpa.",
			qtype:       dns.TypePTR,
			wantCluster: []string{"10.0.96.10.in-addr.arpa. PTR"},
			wantAnswer:  []string{"10.0.96.10.in-addr.arpa.\t30\tIN\tPTR\techo.demo.svc.cluster.local."},
		},
		{
			name:        "reverse lookup of a cluster IPv6 goes to the cluster",
			q:           "a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.",
			qtype:       dns.TypePTR,
			wantCluster: []string{"a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa. PTR"},
			wantAnswer:  []string{"a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.6.9.0.0.0.1.0.0.0.0.d.f.ip6.arpa.\t30\tIN\tPTR\techo.demo.svc.cluster.local."},
		},
		{
			name:         "reverse lookup outside the cluster goes upstream",
			q:            "8.8.8.8.in-addr.arpa.",
			qtype:        dns.TypePTR,
			wantUpstream: []string{"8.8.8.8.in-addr.arpa. PTR"},
			wantAnswer:   []string{"8.8.8.8.in-addr.arpa.\t300\tIN\tPTR\tdns.google."},
		},
		{
			name:         "partial reverse name goes upstream",
			q:            "96.10.in-addr.arpa.",
			qtype:        dns.TypeSOA,
			wantUpstream: []string{"96.10.in-addr.arpa. SOA"},
			wantRcode:    dns.RcodeNameError,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cluster := newFake(t, 5, clusterRecords...)
			upstream := newFake(t, 5, upstreamRecords...)
			s := newTestServer(t, cluster, upstream, nil)
			q := query(tt.q, tt.qtype)
			r := s.Answer(context.Background(), q)
			if got := cluster.askedList(); !sameAsked(got, tt.wantCluster) {
				t.Errorf("cluster asked %q, want %q", got, tt.wantCluster)
			}
			if got := upstream.askedList(); !slices.Equal(got, tt.wantUpstream) {
				t.Errorf("upstream asked %q, want %q", got, tt.wantUpstream)
			}
			if r.Rcode != tt.wantRcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.wantRcode])
			}
			if r.Id != q.Id || !r.Response || len(r.Question) != 1 || r.Question[0] != q.Question[0] {
				t.Errorf("reply header/question %v does not match query %v", r.MsgHdr, q.Question)
			}
			var got []string
			for _, rr := range r.Answer {
				got = append(got, rr.String())
			}
			// Owners are compared case-insensitively: upstream answers use
			// the lower-case name we asked.
			if !slices.EqualFunc(got, tt.wantAnswer, strings.EqualFold) {
				t.Errorf("answer\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.wantAnswer, "\n"))
			}
			if _, err := r.Pack(); err != nil {
				t.Errorf("reply does not pack: %v", err)
			}
		})
	}
}

// sameAsked compares what a backend was asked with the candidates in
// order: the first is asked alone, the rest at once, in any order.
func sameAsked(got, want []string) bool {
	if len(got) != len(want) || len(got) > 0 && got[0] != want[0] {
		return false
	}
	if len(got) == 0 {
		return true
	}
	g, w := slices.Clone(got[1:]), slices.Clone(want[1:])
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

func TestAnswerErrors(t *testing.T) {
	multi := query("echo.", dns.TypeA)
	multi.Question = append(multi.Question, multi.Question[0])
	notify := query("echo.", dns.TypeSOA)
	notify.Opcode = dns.OpcodeNotify
	badVers := query("echo.", dns.TypeA)
	badVers.SetEdns0(1232, false)
	badVers.IsEdns0().SetVersion(1)
	answer := query("echo.", dns.TypeA)
	answer.Response = true

	tests := []struct {
		name      string
		q         *dns.Msg
		cluster   *fakeDNS
		upstream  *fakeDNS
		mod       func(*Config)
		wantRcode int
	}{
		{"nil query", nil, nil, nil, nil, dns.RcodeFormatError},
		{"two questions", multi, nil, nil, nil, dns.RcodeFormatError},
		{"a response", answer, nil, nil, nil, dns.RcodeFormatError},
		{"not a query", notify, nil, nil, nil, dns.RcodeNotImplemented},
		{"unknown EDNS version", badVers, nil, nil, nil, dns.RcodeBadVers},
		{"zone transfer", query("cluster.local.", dns.TypeAXFR), newFake(t, 5), nil, nil, dns.RcodeRefused},
		{"no upstream: cluster's NXDOMAIN stands for a searched name", query("foo.bar.baz.", dns.TypeA), newFake(t, 5), nil, nil, dns.RcodeNameError},
		{"no upstream refuses names only upstream has", query("localhost.", dns.TypeA), newFake(t, 5), nil, nil, dns.RcodeRefused},
		{"no upstream refuses other reverse names", query("8.8.8.8.in-addr.arpa.", dns.TypePTR), newFake(t, 5), nil, nil, dns.RcodeRefused},
		{"no upstream: cluster's NXDOMAIN stands", query("printer.", dns.TypeA), newFake(t, 5), nil, nil, dns.RcodeNameError},
		{"cluster down is SERVFAIL", query("echo.", dns.TypeA), &fakeDNS{err: errDown}, newFake(t, 5), nil, dns.RcodeServerFailure},
		{"upstream down is SERVFAIL", query("foo.bar.baz.", dns.TypeA), newFake(t, 5), &fakeDNS{err: errDown}, nil, dns.RcodeServerFailure},
		{"no cluster domain: nothing goes to the cluster", query("echo.", dns.TypeA), &fakeDNS{err: errDown}, newFake(t, 5, upstreamRecords...),
			func(c *Config) { c.ClusterDomain = "" }, dns.RcodeNameError},
		{"nil Cluster is SERVFAIL", query("echo.demo.svc.cluster.local.", dns.TypeA), nil, nil, nil, dns.RcodeServerFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, tt.cluster, tt.upstream, tt.mod)
			r := s.Answer(context.Background(), tt.q)
			if r == nil {
				t.Fatal("Answer returned nil")
			}
			if r.Rcode != tt.wantRcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tt.wantRcode])
			}
			if _, err := r.Pack(); err != nil {
				t.Errorf("reply does not pack: %v", err)
			}
		})
	}
}

func TestAnswerEDNS(t *testing.T) {
	cluster := newFake(t, 5, clusterRecords...)
	s := newTestServer(t, cluster, nil, nil)

	plain := s.Answer(context.Background(), query("echo.", dns.TypeA))
	if plain.IsEdns0() != nil {
		t.Errorf("reply to a query without EDNS carries OPT: %v", plain)
	}
	q := query("echo.", dns.TypeA)
	q.SetEdns0(4096, true)
	r := s.Answer(context.Background(), q)
	opt := r.IsEdns0()
	if opt == nil || !opt.Do() || opt.UDPSize() != ednsSize {
		t.Errorf("reply OPT = %v, want size %d with DO", opt, ednsSize)
	}
	if n := len(r.Extra); n != 1 {
		t.Errorf("reply has %d extra records, want only our OPT", n)
	}
}

func TestBackendResponseChecked(t *testing.T) {
	wrong := func(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
		m := new(dns.Msg)
		m.SetReply(query("other.", dns.TypeA))
		return m, nil
	}
	s := NewServer(Config{ClusterDomain: "cluster.local", Namespace: "demo", Cluster: wrong})
	if r := s.Answer(context.Background(), query("echo.", dns.TypeA)); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("answer to another question gave rcode %s, want SERVFAIL", dns.RcodeToString[r.Rcode])
	}
}

func TestReverseAddr(t *testing.T) {
	tests := []struct {
		name string
		want string // "" = not an address
	}{
		{"1.0.96.10.in-addr.arpa.", "10.96.0.1"},
		{"1.0.96.10.IN-ADDR.ARPA", "10.96.0.1"},
		{"255.255.255.255.in-addr.arpa.", "255.255.255.255"},
		{"256.0.96.10.in-addr.arpa.", ""},
		{"01.0.96.10.in-addr.arpa.", ""},
		{"+1.0.96.10.in-addr.arpa.", ""},
		{"0.96.10.in-addr.arpa.", ""},
		{".0.96.10.in-addr.arpa.", ""},
		{"1.1.0.96.10.in-addr.arpa.", ""},
		{"b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa.", "4321:0:1:2:3:4:567:89ab"},
		{"b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.ip6.arpa.", ""},
		{"g.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa.", ""},
		{"example.com.", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, ok := reverseAddr(tt.name)
			got := ""
			if ok {
				got = a.String()
			}
			if got != tt.want {
				t.Errorf("reverseAddr(%q) = %q, want %q", tt.name, got, tt.want)
			}
		})
	}
}

func TestCache(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cluster := newFake(t, 5, clusterRecords...)
	upstream := newFake(t, 3600, upstreamRecords...)
	s := newTestServer(t, cluster, upstream, func(c *Config) { c.CacheSize = 100; c.Now = clock.Now })
	ctx := context.Background()
	ask := func(name string) *dns.Msg { return s.Answer(ctx, query(name, dns.TypeA)) }

	// Positive answer: cached for its TTL (30s), TTL counting down.
	ask("echo.")
	clock.Advance(10 * time.Second)
	r := ask("echo.")
	if n := cluster.calls.Load(); n != 1 {
		t.Fatalf("cluster asked %d times within the TTL, want 1", n)
	}
	if ttl := r.Answer[0].Header().Ttl; ttl != 20 {
		t.Errorf("cached TTL after 10s = %d, want 20", ttl)
	}
	if r.Answer[0].Header().Name != "echo." {
		t.Errorf("cached answer owner %q, want echo.", r.Answer[0].Header().Name)
	}
	// The full name shares the cluster's cache entry.
	ask("echo.demo.svc.cluster.local.")
	if n := cluster.calls.Load(); n != 1 {
		t.Errorf("cluster asked %d times for the same cluster name, want 1", n)
	}
	clock.Advance(20 * time.Second)
	ask("echo.")
	if n := cluster.calls.Load(); n != 2 {
		t.Errorf("cluster asked %d times after the TTL expired, want 2", n)
	}

	// Negative answer: cached for the SOA minimum (5s).
	cluster.reset()
	ask("nope.demo.svc.cluster.local.")
	clock.Advance(4 * time.Second)
	ask("nope.demo.svc.cluster.local.")
	if n := cluster.calls.Load(); n != 1 {
		t.Errorf("cluster asked %d times for a cached NXDOMAIN, want 1", n)
	}
	clock.Advance(2 * time.Second)
	ask("nope.demo.svc.cluster.local.")
	if n := cluster.calls.Load(); n != 2 {
		t.Errorf("cluster asked %d times after the negative TTL, want 2", n)
	}

	// Negative TTL is capped: upstream's SOA minimum of an hour is kept 30s.
	upstream.reset()
	ask("nothere.example.")
	clock.Advance(29 * time.Second)
	ask("nothere.example.")
	if n := upstream.calls.Load(); n != 1 {
		t.Errorf("upstream asked %d times within the cap, want 1", n)
	}
	clock.Advance(2 * time.Second)
	ask("nothere.example.")
	if n := upstream.calls.Load(); n != 2 {
		t.Errorf("upstream asked %d times after the cap, want 2", n)
	}

	// Failures are not cached.
	down := &fakeDNS{err: errDown}
	s2 := newTestServer(t, down, nil, func(c *Config) { c.CacheSize = 100; c.Now = clock.Now })
	s2.Answer(ctx, query("echo.demo.svc.cluster.local.", dns.TypeA))
	s2.Answer(ctx, query("echo.demo.svc.cluster.local.", dns.TypeA))
	if n := down.calls.Load(); n != 2 {
		t.Errorf("failing cluster asked %d times, want 2 (failures are not cached)", n)
	}
}

func TestCacheBounded(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cluster := newFake(t, 5, clusterRecords...)
	s := newTestServer(t, cluster, nil, func(c *Config) { c.CacheSize = 2; c.Now = clock.Now })
	ctx := context.Background()
	for _, n := range []string{"echo.", "web.other.", "ext."} {
		s.Answer(ctx, query(n, dns.TypeA))
	}
	if n := s.cache.len(); n != 2 {
		t.Errorf("cache holds %d entries, want 2", n)
	}
	cluster.reset()
	s.Answer(ctx, query("ext.", dns.TypeA)) // most recent: cached
	s.Answer(ctx, query("echo.", dns.TypeA))
	if got, want := cluster.askedList(), []string{"echo.demo.svc.cluster.local. A"}; !slices.Equal(got, want) {
		t.Errorf("after eviction cluster asked %q, want %q", got, want)
	}
}

// On synctest's clock: once every goroutine is blocked, all have joined
// the one flight.
func TestCoalesce(t *testing.T) { synctest.Test(t, testCoalesce) }

func testCoalesce(t *testing.T) {
	cluster := newFake(t, 5, clusterRecords...)
	cluster.gate = make(chan struct{})
	s := newTestServer(t, cluster, nil, nil) // no cache: coalescing alone
	ctx := context.Background()

	const n = 8
	var wg sync.WaitGroup
	answers := make([]*dns.Msg, n)
	for i := range n {
		wg.Go(func() { answers[i] = s.Answer(ctx, query("echo.", dns.TypeA)) })
	}
	synctest.Wait() // one asks the cluster, the others join its flight
	close(cluster.gate)
	wg.Wait()
	if c := cluster.calls.Load(); c != 1 {
		t.Errorf("cluster asked %d times for %d identical concurrent queries, want 1", c, n)
	}
	for i, r := range answers {
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].Header().Name != "echo." {
			t.Errorf("answer %d = %v", i, r)
		}
	}
}

// On synctest's clock: synctest.Wait returns once the first asks the
// cluster, then once the second has joined its flight.
func TestCoalescedCallerCancelled(t *testing.T) { synctest.Test(t, testCoalescedCallerCancelled) }

func testCoalescedCallerCancelled(t *testing.T) {
	cluster := newFake(t, 5, clusterRecords...)
	cluster.gate = make(chan struct{})
	s := newTestServer(t, cluster, nil, nil)

	first, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Answer(first, query("echo.", dns.TypeA)) }()
	synctest.Wait()
	second := make(chan *dns.Msg)
	go func() { second <- s.Answer(context.Background(), query("echo.", dns.TypeA)) }()
	synctest.Wait()
	cancel()
	<-done
	close(cluster.gate)
	if r := <-second; r.Rcode != dns.RcodeSuccess {
		t.Errorf("second caller got %s because the first went away", dns.RcodeToString[r.Rcode])
	}
}

func BenchmarkAnswer(b *testing.B) {
	for _, bc := range []struct {
		name  string
		cache int
	}{{"uncached", -1}, {"cached", 1024}} {
		b.Run(bc.name, func(b *testing.B) {
			cluster := newFake(b, 5, clusterRecords...)
			s := newTestServer(b, cluster, nil, func(c *Config) { c.CacheSize = bc.cache })
			ctx := context.Background()
			q := query("echo.", dns.TypeA)
			b.ReportAllocs()
			for b.Loop() {
				if r := s.Answer(ctx, q); len(r.Answer) != 1 {
					b.Fatalf("bad answer %v", r)
				}
			}
		})
	}
}
