// Package dns answers the laptop's DNS queries so that names resolve as they
// do in a pod of the connected namespace: each name is tried in a pod's
// search order (see Candidates), names under the cluster's domain are asked
// of the cluster's DNS through the manager, and the rest of the laptop's own
// resolver, only once the cluster has said it does not have the name.
package dns

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
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
	// Namespace is the connected namespace: the first search domain is
	// its, so "web" is the Service web of it.
	Namespace string
	// Search is the search list, as a pod of Namespace has it; nil means
	// PodSearch(Namespace, ClusterDomain).
	Search []string
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
	cfg     Config
	domain  string // lower-case, fully qualified, or "" for none
	search  []string
	reverse []netip.Prefix
	log     *slog.Logger
	now     func() time.Time
	cache   *cache
	flight  singleflight.Group
}

// EDNS buffer size we advertise and ask with (DNS flag day 2020).
const ednsSize = 1232

// NewServer returns a Server for cfg.
func NewServer(cfg Config) *Server {
	s := &Server{
		cfg:    cfg,
		search: cfg.Search,
		log:    cfg.Logger,
		now:    cfg.Now,
	}
	if d := strings.ToLower(strings.Trim(cfg.ClusterDomain, ".")); d != "" {
		s.domain = d + "."
	}
	if s.search == nil {
		s.search = PodSearch(cfg.Namespace, cfg.ClusterDomain)
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

	cands := s.plan(question.Name)
	log := s.log.With("name", question.Name, "type", dns.Type(question.Qtype).String())
	r, asked, err := s.resolve(ctx, question, cands)
	switch {
	case errors.Is(err, errNoUpstream):
		return s.fail(q, dns.RcodeRefused)
	case err != nil:
		log.Debug("lookup failed", "candidates", len(cands), "err", err)
		return s.fail(q, dns.RcodeServerFailure)
	}
	if asked != "" && !strings.EqualFold(asked, question.Name) {
		log.Debug("answered by a search domain", "asked", asked, "rcode", dns.RcodeToString[r.Rcode])
		renameOwner(r, asked, question.Name)
	}
	return s.reply(q, r)
}

// errNoUpstream: the name is not the cluster's and there is no Upstream.
var errNoUpstream = errors.New("not a cluster name, and no upstream resolver")

// resolve tries cands in order and returns the answer of the first whose
// name exists (NOERROR, records of the type or not) and that name. A name
// the cluster has ends the search even without records of the type asked:
// the AAAA question of an IPv4-only Service is answered NODATA from the
// cluster, as the A question is answered from there, never from upstream
// (glibc likewise stops at the search domain where the A and AAAA pair of
// getaddrinfo gets any answer).
//
// When no candidate exists, the answer is the last NXDOMAIN. When a
// backend failed (an error, or an rcode other than NOERROR and NXDOMAIN)
// and no later candidate exists, the answer is that failure: SERVFAIL for
// an error, and the rcode upstream gave otherwise, so that a stub tries
// its next server or search domain rather than caching a denial we could
// not make. Upstream is not asked after the cluster failed: the name may
// be the cluster's, and would leak. With no Upstream, upstream candidates
// are skipped; if there were no others, errNoUpstream.
//
// Cluster candidates are asked as firstCluster says; their answers are
// taken in order whatever order they come back in.
func (s *Server) resolve(ctx context.Context, question dns.Question, cands []Candidate) (*dns.Msg, string, error) {
	var (
		negative      *dns.Msg // the last NXDOMAIN
		failed        *dns.Msg // the first failed answer
		failErr       error    // the first backend error
		clusterFailed bool
	)
	// take classifies one candidate's answer; true ends the search.
	take := func(r *dns.Msg, err error, cluster bool) bool {
		switch {
		case err != nil:
			failErr = cmp.Or(failErr, err)
			clusterFailed = clusterFailed || cluster
		case r.Rcode == dns.RcodeSuccess:
			return true
		case r.Rcode == dns.RcodeNameError:
			negative = r
		default:
			if failed == nil {
				failed = r
			}
			clusterFailed = clusterFailed || cluster
		}
		return false
	}
	for i := 0; i < len(cands); {
		if c := cands[i]; !c.Cluster {
			i++
			if clusterFailed || s.cfg.Upstream == nil {
				continue
			}
			r, err := s.exchange(ctx, routeUpstream, c.Name, question)
			if take(r, err, false) {
				return r, c.Name, nil
			}
			continue
		}
		j := i + 1
		for j < len(cands) && cands[j].Cluster {
			j++
		}
		if r, name := s.firstCluster(ctx, question, cands[i:j], take); r != nil {
			return r, name, nil
		}
		i = j
	}
	switch {
	case failErr != nil:
		return nil, "", failErr
	case failed != nil:
		return failed, "", nil
	case negative != nil:
		return negative, "", nil
	}
	return nil, "", errNoUpstream
}

// firstCluster asks the cluster about the candidates of run and hands the
// answers to take in run's order until take says one ends the search; it
// returns that answer and its name, or nil. The first candidate is asked
// alone: it is the namespace's, and most names a program asks for by a short
// name are found there ("web", "web-0.web"). The rest are asked at once, so
// that a name found further down ("web.other") or nowhere (a public name a
// stub sent us) costs two round trips to the cluster, not one per search
// domain. It returns only once every question it started has returned; those
// after the one that ended the search are cancelled.
func (s *Server) firstCluster(ctx context.Context, question dns.Question, run []Candidate, take func(*dns.Msg, error, bool) bool) (*dns.Msg, string) {
	r, err := s.exchange(ctx, routeCluster, run[0].Name, question)
	if take(r, err, true) {
		return r, run[0].Name
	}
	if len(run) == 1 {
		return nil, ""
	}
	run = run[1:]
	type result struct {
		r   *dns.Msg
		err error
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel: deferred calls run last first
	defer cancel()
	results := make([]chan result, len(run))
	for i, c := range run {
		results[i] = make(chan result, 1)
		wg.Go(func() {
			r, err := s.exchange(ctx, routeCluster, c.Name, question)
			results[i] <- result{r, err}
		})
	}
	for i, ch := range results {
		res := <-ch
		if take(res.r, res.err, true) {
			return res.r, run[i].Name
		}
	}
	return nil, ""
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
