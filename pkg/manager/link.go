package manager

import "sync"

// laptopLink says whether a session's laptop can take intercepted
// connections now: it can while at least one of its Dials streams is open.
//
// A daemon that dies (kill -9, a crash) takes its port-forward's TCP
// connection with it: the API server and the kubelet close theirs, our gRPC
// transport reads EOF, and the Dials stream ends at once. A link that dies
// without a FIN (a laptop that sleeps, a cable pulled) is ended by the
// server's keepalive pings (laptopKeepalive). Either way dials fail at once
// with CLOSE_REASON_LAPTOP_GONE and the agents serve the requests with the
// app, while the session itself stays until its heartbeat lapses, so that a
// daemon that reconnects after a blip finds it and opens Dials again.
type laptopLink struct {
	mu   sync.Mutex
	open int
	// down is closed while no Dials stream is open, and replaced by an
	// open one when the first stream opens.
	down chan struct{}
}

func newLaptopLink() *laptopLink {
	down := make(chan struct{})
	close(down)
	return &laptopLink{down: down}
}

// attach counts an open Dials stream until detach, which may be called more
// than once.
func (l *laptopLink) attach() (detach func()) {
	l.mu.Lock()
	if l.open == 0 {
		l.down = make(chan struct{})
	}
	l.open++
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.open--
			if l.open == 0 {
				close(l.down)
			}
		})
	}
}

// gone returns a channel that is closed once no Dials stream is open (at
// once if none is open now).
func (l *laptopLink) gone() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.down
}
