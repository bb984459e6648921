package session

import (
	"context"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// idleMemory gives the heap's free pages back to the OS once the daemon has
// had no flow open for a while after some traffic. The Go runtime returns
// them by itself, but slowly (its scavenger paces itself to about 1% of a
// CPU): after a few bulk downloads the daemon kept some 50 MiB of heap it no
// longer used, for minutes (make bench: RSS at rest 91 MiB, 53 of it anon).
// A full GC of the daemon's small live heap takes about a millisecond.
type idleMemory struct {
	active atomic.Int64
	dirty  atomic.Bool   // a flow was opened since the last release
	ended  chan struct{} // the last open flow ended; capacity 1
}

func newIdleMemory() *idleMemory { return &idleMemory{ended: make(chan struct{}, 1)} }

func (m *idleMemory) begin() {
	m.active.Add(1)
	m.dirty.Store(true)
}

func (m *idleMemory) end() {
	if m.active.Add(-1) == 0 {
		select {
		case m.ended <- struct{}{}:
		default:
		}
	}
}

// run releases memory after each quiet spell of length after, until ctx ends.
func (m *idleMemory) run(ctx context.Context, after time.Duration) error {
	t := time.NewTimer(after)
	t.Stop()
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-m.ended:
			t.Reset(after)
		case <-t.C:
			if m.active.Load() == 0 && m.dirty.Swap(false) {
				debug.FreeOSMemory()
			}
		}
	}
}
