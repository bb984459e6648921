package dns

import (
	"container/list"
	"sync"
	"time"

	"github.com/miekg/dns"
)

const (
	// maxPositiveTTL bounds how long a positive answer is kept whatever its
	// TTL says: cluster Services come and go, and a session is short.
	maxPositiveTTL = time.Hour
	// maxNegativeTTL bounds how long NXDOMAIN/NODATA is kept (RFC 2308
	// allows the SOA minimum; we keep it short so that a Service created
	// just after a failed lookup resolves soon).
	maxNegativeTTL = 30 * time.Second
)

// cacheKey names one cached answer. backend separates the cluster's answer
// for a name from Upstream's answer for the same name.
type cacheKey struct {
	backend route
	name    string // lower-case, fully qualified
	qtype   uint16
	qclass  uint16
}

type cacheEntry struct {
	key     cacheKey
	msg     *dns.Msg // never handed out; get returns copies
	stored  time.Time
	expires time.Time
}

// cache is a bounded LRU of answers that honours their TTLs.
type cache struct {
	mu   sync.Mutex
	max  int
	ll   *list.List // front = most recently used; values are *cacheEntry
	byID map[cacheKey]*list.Element
}

func newCache(max int) *cache {
	return &cache{max: max, ll: list.New(), byID: make(map[cacheKey]*list.Element)}
}

// get returns a copy of the cached answer with its TTLs lowered by the time
// it spent in the cache, or nil.
func (c *cache) get(k cacheKey, now time.Time) *dns.Msg {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	el, ok := c.byID[k]
	if !ok {
		c.mu.Unlock()
		return nil
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.ll.Remove(el)
		delete(c.byID, k)
		c.mu.Unlock()
		return nil
	}
	c.ll.MoveToFront(el)
	m, stored := e.msg, e.stored
	c.mu.Unlock()

	// m is immutable once stored, so copying outside the lock is safe.
	out := m.Copy()
	age := uint32(now.Sub(stored) / time.Second)
	for _, sec := range [][]dns.RR{out.Answer, out.Ns, out.Extra} {
		for _, rr := range sec {
			h := rr.Header()
			if h.Rrtype == dns.TypeOPT {
				continue
			}
			if h.Ttl > age {
				h.Ttl -= age
			} else {
				h.Ttl = 0
			}
		}
	}
	return out
}

// put stores a copy of m if it is cacheable.
func (c *cache) put(k cacheKey, m *dns.Msg, now time.Time) {
	if c == nil || c.max <= 0 {
		return
	}
	ttl, ok := cacheTTL(m)
	if !ok || ttl <= 0 {
		return
	}
	e := &cacheEntry{key: k, msg: m.Copy(), stored: now, expires: now.Add(ttl)}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byID[k]; ok {
		el.Value = e
		c.ll.MoveToFront(el)
		return
	}
	c.byID[k] = c.ll.PushFront(e)
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.byID, old.Value.(*cacheEntry).key)
	}
}

// cacheTTL says how long m may be cached: the smallest TTL of its records
// for a positive answer; for NXDOMAIN and NODATA the SOA's negative TTL
// (min of its TTL and MINIMUM field, RFC 2308 section 5). Failures,
// truncated answers and negative answers without an SOA are not cached.
func cacheTTL(m *dns.Msg) (time.Duration, bool) {
	if m.Truncated {
		return 0, false
	}
	switch m.Rcode {
	case dns.RcodeSuccess:
		if len(m.Answer) > 0 {
			ttl := minTTL(m.Answer, m.Ns)
			return min(time.Duration(ttl)*time.Second, maxPositiveTTL), true
		}
		fallthrough // NODATA
	case dns.RcodeNameError:
		for _, rr := range m.Ns {
			if soa, ok := rr.(*dns.SOA); ok {
				ttl := min(soa.Hdr.Ttl, soa.Minttl)
				return min(time.Duration(ttl)*time.Second, maxNegativeTTL), true
			}
		}
	}
	return 0, false
}

func minTTL(sections ...[]dns.RR) uint32 {
	ttl := ^uint32(0)
	for _, sec := range sections {
		for _, rr := range sec {
			if rr.Header().Rrtype == dns.TypeOPT {
				continue
			}
			ttl = min(ttl, rr.Header().Ttl)
		}
	}
	return ttl
}
