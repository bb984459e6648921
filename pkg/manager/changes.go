package manager

import (
	"context"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// changes tells waiters that something they may wait for changed: a pod
// in the informer's cache, an agent registered, went or applied routes, an
// intercept's creation moved on. A waiter takes wait's channel, looks at
// what it waits for, and waits on the channel only if that is not there
// yet: no change in between is lost. It is a broadcast with no payload, as
// sync.Cond is, but selectable with a context.
type changes struct {
	mu sync.Mutex
	ch chan struct{}
}

func newChanges() *changes { return &changes{ch: make(chan struct{})} }

// wait returns a channel closed at the next fire.
func (c *changes) wait() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ch
}

// fire wakes every waiter.
func (c *changes) fire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.ch)
	c.ch = make(chan struct{})
}

// pod returns the pod from the controller's informer cache once it has
// synced; before (and in tests that run no controller) from the API server.
// The cache's pod is read-only.
func (s *Server) pod(ctx context.Context, name string) (*corev1.Pod, error) {
	if s.ctl != nil && s.ctl.synced() {
		return s.ctl.pods.Get(name)
	}
	return s.cfg.Client.CoreV1().Pods(s.cfg.Namespace).Get(ctx, name, metav1.GetOptions{})
}

// podNewerThan returns pod name from the cache once its resourceVersion is
// no longer rv (a write this manager made, or saw refused as a conflict,
// has reached the informer), waiting for the informer's events.
func (s *Server) podNewerThan(ctx context.Context, name, rv string) (*corev1.Pod, error) {
	for {
		ch := s.changes.wait()
		p, err := s.pod(ctx, name)
		if err != nil || p.ResourceVersion != rv {
			return p, err
		}
		select {
		case <-ctx.Done():
			return nil, status.Errorf(codes.DeadlineExceeded, "pod %s/%s: no newer version arrived: %v", s.cfg.Namespace, name, ctx.Err())
		case <-ch:
		}
	}
}
