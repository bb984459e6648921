package session

import (
	"context"
	"testing"
	"time"
)

func TestIdleMemoryReleasesOnceQuiet(t *testing.T) {
	m := newIdleMemory()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.run(ctx, 20*time.Millisecond) }()
	m.begin()
	m.begin()
	m.end()
	time.Sleep(60 * time.Millisecond)
	if !m.dirty.Load() {
		t.Fatal("released while a flow was open")
	}
	m.end()
	deadline := time.Now().Add(5 * time.Second)
	for m.dirty.Load() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if m.dirty.Load() {
		t.Fatal("not released after the last flow ended")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
