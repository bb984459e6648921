package session

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// On synctest's clock: released exactly once quiet for after, not before.
func TestIdleMemoryReleasesOnceQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const after = 20 * time.Millisecond
		m := newIdleMemory()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.run(ctx, after) }()
		m.begin()
		m.begin()
		m.end()
		time.Sleep(3 * after)
		synctest.Wait()
		if !m.dirty.Load() {
			t.Fatal("released while a flow was open")
		}
		m.end()
		time.Sleep(after - time.Nanosecond)
		synctest.Wait()
		if !m.dirty.Load() {
			t.Fatal("released before quiet for after")
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if m.dirty.Load() {
			t.Fatal("not released after the last flow ended")
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
