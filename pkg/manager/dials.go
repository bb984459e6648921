package manager

import (
	"crypto/rand"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// dialBroker is the rendezvous of an agent's intercepted connection and the
// laptop's Tunnel stream that answers its DialRequest, by dial ID, under its
// own lock.
type dialBroker struct {
	mu      sync.Mutex
	pending map[string]*dialWait
}

type dialWait struct {
	laptop chan teleproto.Manager_TunnelServer
	done   chan struct{}
}

func newDialBroker() *dialBroker { return &dialBroker{pending: map[string]*dialWait{}} }

// open registers a dial waiting for its laptop, under a new ID; end
// forgets it and releases the laptop's stream.
func (b *dialBroker) open() (id string, w *dialWait, end func()) {
	id = rand.Text()
	w = &dialWait{laptop: make(chan teleproto.Manager_TunnelServer, 1), done: make(chan struct{})}
	b.mu.Lock()
	b.pending[id] = w
	b.mu.Unlock()
	return id, w, func() {
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
		close(w.done)
	}
}

// answer hands the laptop's stream to dial id and returns the channel
// closed when the dial is done with it.
func (b *dialBroker) answer(id string, stream teleproto.Manager_TunnelServer) (<-chan struct{}, error) {
	b.mu.Lock()
	w, ok := b.pending[id]
	b.mu.Unlock()
	if !ok {
		return nil, status.Errorf(codes.NotFound, "dial %s is no longer wanted", id)
	}
	select {
	case w.laptop <- stream:
		return w.done, nil
	default:
		return nil, status.Errorf(codes.AlreadyExists, "dial %s already answered", id)
	}
}
