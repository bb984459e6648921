package manager

import (
	"sync"
	"time"
)

// sessionRegistry is the live sessions, by ID, under its own lock, and what
// the manager's idle exit is decided from: when the last one ended, and
// whether the manager is closing (no session may arrive then). Ending a
// session (its context, its intercepts' cleanup) is the Server's: the
// registry's methods return the sessions they removed, having counted each
// in ending under the lock, so that Close, which waits for ending after
// close, waits for every cleanup.
type sessionRegistry struct {
	ending    *sync.WaitGroup
	mu        sync.Mutex
	byID      map[string]*session
	idleSince time.Time // when the last session ended; meaningful when byID is empty
	closing   bool
}

func newSessionRegistry(now time.Time, ending *sync.WaitGroup) *sessionRegistry {
	return &sessionRegistry{ending: ending, byID: map[string]*session{}, idleSince: now}
}

// add registers ss, unless the manager is closing.
func (r *sessionRegistry) add(ss *session) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closing {
		return false
	}
	r.byID[ss.id] = ss
	return true
}

// get returns the session id, nil if there is none.
func (r *sessionRegistry) get(id string) *session {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byID[id]
}

// lookup returns the live session id; a session whose heartbeat is older
// than timeout at now is removed and returned as expired instead.
func (r *sessionRegistry) lookup(id string, now time.Time, timeout time.Duration) (live, expired *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ss := r.byID[id]
	if ss != nil && now.Sub(ss.lastSeen) > timeout {
		r.removeLocked(ss, now)
		return nil, ss
	}
	return ss, nil
}

// touch records a heartbeat of ss at now.
func (r *sessionRegistry) touch(ss *session, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ss.lastSeen = now
}

// remove removes the session id and returns it, nil if there is none.
func (r *sessionRegistry) remove(id string, now time.Time) *session {
	r.mu.Lock()
	defer r.mu.Unlock()
	ss := r.byID[id]
	if ss != nil {
		r.removeLocked(ss, now)
	}
	return ss
}

func (r *sessionRegistry) removeLocked(ss *session, now time.Time) {
	delete(r.byID, ss.id)
	r.ending.Add(1)
	if len(r.byID) == 0 {
		r.idleSince = now
	}
}

// reap removes and returns the sessions whose heartbeat is older than
// timeout at now, and reports whether the manager has then been without
// sessions for idle: it is then closing.
func (r *sessionRegistry) reap(now time.Time, timeout, idle time.Duration) (expired []*session, idleExit bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ss := range r.byID {
		if now.Sub(ss.lastSeen) > timeout {
			r.removeLocked(ss, now)
			expired = append(expired, ss)
		}
	}
	if len(r.byID) == 0 && now.Sub(r.idleSince) >= idle {
		r.closing = true
		return expired, true
	}
	return expired, false
}

// close makes the registry refuse new sessions, removes every session and
// returns them.
func (r *sessionRegistry) close(now time.Time) []*session {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closing = true
	var out []*session
	for _, ss := range r.byID {
		r.removeLocked(ss, now)
		out = append(out, ss)
	}
	return out
}

// count is the number of live sessions.
func (r *sessionRegistry) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byID)
}
