// Package dns answers the laptop's DNS queries so that cluster names resolve
// as they do in a pod of the connected namespace: cluster names (and the
// short forms a pod's search list would expand) are asked of the cluster's
// DNS through the manager, everything else of the laptop's own resolver.
package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/singleflight"
)

// Exchange sends one query and returns the response. Implementations must
// not keep or modify q, and must return a message the caller may keep.
type Exchange func(ctx context.Context, q *dns.Msg) (*dns.Msg, error)

// Config configures a Server.
type Config struct {
	// ClusterDomain is the cluster's DNS domain, e.g. "cluster.local",
	// learnt from the cluster. Empty means no name is sent to the cluster.
	ClusterDomain string
	// Namespace is the connected namespace; single-label names are looked
	// up as Services of it.
	Namespace string
	// ReverseCIDRs are the cluster's pod and service ranges: reverse
	// lookups (in-addr.arpa, ip6.arpa) of addresses in them go to Cluster.
	ReverseCIDRs []netip.Prefix

	// Cluster asks the cluster's DNS (through the manager).
	Cluster Exchange
	// Upstream asks the laptop's original resolver, for non-cluster names.
	// Nil answers such names REFUSED at once.
	Upstream Exchange

	// CacheSize bounds the number of cached answers; 0 means 1024 and a
	// negative value disables the cache.
	CacheSize int
	// Timeout bounds one Answer, backends included; 0 means 5s, the
	// default retry interval of most stub resolvers.
	Timeout time.Duration
	// MaxInFlight bounds the queries answered concurrently per flow; 0
	// means 64.
	MaxInFlight int
	// IdleTimeout ends a flow that has sent nothing for this long; 0 means
	// 30s. A stub resolver usually uses a fresh UDP port per query, so UDP
	// flows would otherwise pile up.
	IdleTimeout time.Duration

	Logger *slog.Logger
	// Now is the clock, for tests; nil means time.Now.
	Now func() time.Time
}

// Server answers DNS queries according to its Config. It is safe for
// concurrent use and owns no goroutines between calls.
type Server struct {
	cfg       Config
	domain    string // lower-case, fully qualified, or "" for none
	namespace string // lower-case
	reverse   []netip.Prefix
	log       *slog.Logger
	now       func() time.Time
	cache     *cache
	flight    singleflight.Group
}

// EDNS buffer size we advertise and ask with (DNS flag day 2020).
const ednsSize = 1232

// NewServer returns a Server for cfg.
func NewServer(cfg Config) *Server {
	s := &Server{
		cfg:       cfg,
		namespace: strings.ToLower(strings.Trim(cfg.Namespace, ".")),
		log:       cfg.Logger,
		now:       cfg.Now,
	}
	if d := strings.ToLower(strings.Trim(cfg.ClusterDomain, ".")); d != "" {
		s.domain = d + "."
	}
	for _, p := range cfg.ReverseCIDRs {
		if p.IsValid() {
			s.reverse = append(s.reverse, p.Masked())
		}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.cfg.Timeout <= 0 {
		s.cfg.Timeout = 5 * time.Second
	}
	if s.cfg.MaxInFlight <= 0 {
		s.cfg.MaxInFlight = 64
	}
	if s.cfg.IdleTimeout <= 0 {
		s.cfg.IdleTimeout = 30 * time.Second
	}
	switch {
	case cfg.CacheSize == 0:
		s.cache = newCache(1024)
	case cfg.CacheSize > 0:
		s.cache = newCache(cfg.CacheSize)
	}
	return s
}

var (
	errNoBackend   = errors.New("no resolver configured")
	errBadResponse = errors.New("response does not answer the question")
)

// Answer answers one query. It never returns nil: malformed queries get
// FORMERR, unsupported ones NOTIMP or REFUSED, and failures SERVFAIL.
func (s *Server) Answer(ctx context.Context, q *dns.Msg) *dns.Msg {
	if q == nil {
		return &dns.Msg{MsgHdr: dns.MsgHdr{Response: true, Rcode: dns.RcodeFormatError}}
	}
	if q.Response || len(q.Question) != 1 {
		return s.fail(q, dns.RcodeFormatError)
	}
	if q.Opcode != dns.OpcodeQuery {
		return s.fail(q, dns.RcodeNotImplemented)
	}
	if opt := q.IsEdns0(); opt != nil && opt.Version() != 0 {
		return s.fail(q, dns.RcodeBadVers) // RFC 6891 section 6.1.3
	}
	question := q.Question[0]
	switch question.Qtype {
	case dns.TypeAXFR, dns.TypeIXFR:
		return s.fail(q, dns.RcodeRefused)
	}

	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()

	d := s.decide(question.Name)
	log := s.log.With("name", question.Name, "type", dns.Type(question.Qtype).String(), "route", d.route.String())
	var (
		r   *dns.Msg
		err error
	)
	switch d.route {
	case routeCluster:
		r, err = s.exchange(ctx, routeCluster, d.name, question)
	case routeRewrite:
		r, err = s.exchange(ctx, routeCluster, d.name, question)
		if err == nil && r.Rcode == dns.RcodeNameError {
			if s.cfg.Upstream == nil {
				break // the cluster's NXDOMAIN is the answer
			}
			log.Debug("not a cluster name, asking upstream", "asked", d.name)
			r, err = s.exchange(ctx, routeUpstream, strings.ToLower(dns.Fqdn(question.Name)), question)
			break
		}
		if err == nil {
			renameOwner(r, d.name, question.Name)
		}
	default:
		if s.cfg.Upstream == nil {
			return s.fail(q, dns.RcodeRefused)
		}
		r, err = s.exchange(ctx, routeUpstream, strings.ToLower(dns.Fqdn(question.Name)), question)
	}
	if err != nil {
		log.Debug("lookup failed", "err", err)
		return s.fail(q, dns.RcodeServerFailure)
	}
	return s.reply(q, r)
}

// exchange asks backend about name, through the cache, coalescing
// concurrent identical questions. The result belongs to the caller.
func (s *Server) exchange(ctx context.Context, backend route, name string, question dns.Question) (*dns.Msg, error) {
	key := cacheKey{backend: backend, name: name, qtype: question.Qtype, qclass: question.Qclass}
	if m := s.cache.get(key, s.now()); m != nil {
		return m, nil
	}
	flightKey := fmt.Sprintf("%d/%s/%d/%d", backend, name, question.Qtype, question.Qclass)
	for attempt := 0; ; attempt++ {
		v, err, shared := s.flight.Do(flightKey, func() (any, error) {
			return s.ask(ctx, key)
		})
		// The shared call ran under the first caller's context; if that
		// caller went away, its cancellation is not our failure.
		if err != nil && shared && attempt == 0 && ctx.Err() == nil &&
			(errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if shared {
			return v.(*dns.Msg).Copy(), nil
		}
		return v.(*dns.Msg), nil
	}
}

// ask sends one query for key to its backend and caches the answer. The
// returned message is not modified afterwards by anyone but the caller of
// exchange that did not share it, so sharing callers copy it first.
func (s *Server) ask(ctx context.Context, key cacheKey) (*dns.Msg, error) {
	ex, what := s.cfg.Cluster, "cluster DNS"
	if key.backend == routeUpstream {
		ex, what = s.cfg.Upstream, "upstream DNS"
	}
	if ex == nil {
		return nil, fmt.Errorf("ask %s about %s: %w", what, key.name, errNoBackend)
	}
	// The query is canonical (fixed flags, no DO bit) so that one cached
	// answer is right for every client asking this name, type and class.
	q := new(dns.Msg)
	q.Id = dns.Id()
	q.RecursionDesired = true
	q.Question = []dns.Question{{Name: key.name, Qtype: key.qtype, Qclass: key.qclass}}
	q.SetEdns0(ednsSize, false)
	r, err := ex(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("ask %s about %s %s: %w", what, key.name, dns.Type(key.qtype), err)
	}
	if r == nil || !r.Response || len(r.Question) != 1 ||
		!strings.EqualFold(r.Question[0].Name, key.name) ||
		r.Question[0].Qtype != key.qtype || r.Question[0].Qclass != key.qclass {
		return nil, fmt.Errorf("ask %s about %s %s: %w", what, key.name, dns.Type(key.qtype), errBadResponse)
	}
	// The cache stores its own copy, so r stays ours to hand out.
	s.cache.put(key, r, s.now())
	return r, nil
}

// renameOwner gives the records owned by the name we asked the cluster for
// (asked) the name the client asked for (orig). A CNAME chain stays
// sensible: orig CNAME target, then target's records unchanged.
func renameOwner(r *dns.Msg, asked, orig string) {
	for _, sec := range [][]dns.RR{r.Answer, r.Ns, r.Extra} {
		for _, rr := range sec {
			if h := rr.Header(); strings.EqualFold(h.Name, asked) {
				h.Name = orig
			}
		}
	}
}

// reply builds the response to q from a backend's answer r, which it may
// take apart.
func (s *Server) reply(q, r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Question = q.Question[:1:1] // the client's spelling, 0x20 case included
	m.RecursionAvailable = true
	m.Authoritative = false
	m.Rcode = r.Rcode
	m.Answer = r.Answer
	m.Ns = r.Ns
	for _, rr := range r.Extra {
		if rr.Header().Rrtype != dns.TypeOPT {
			m.Extra = append(m.Extra, rr)
		}
	}
	s.addEdns(q, m)
	return m
}

// fail answers q with rcode and nothing else.
func (s *Server) fail(q *dns.Msg, rcode int) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(q)
	if len(q.Question) != 1 {
		m.Question = nil
	}
	m.Rcode = rcode
	m.RecursionAvailable = true
	s.addEdns(q, m)
	return m
}

// addEdns adds our OPT record when the client sent one (RFC 6891), and
// makes sure an extended rcode never goes to a client without EDNS.
func (s *Server) addEdns(q, m *dns.Msg) {
	opt := q.IsEdns0()
	if opt == nil {
		if m.Rcode > 0xF {
			m.Rcode = dns.RcodeServerFailure
		}
		return
	}
	m.SetEdns0(ednsSize, opt.Do())
}
