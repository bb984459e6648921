package router

import (
	"context"
	"net"
	"sync"
)

// handoffListener is the net.Listener the HTTP server serves: the accept
// loop hands it the connections it sniffed as HTTP.
type handoffListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

// handoff gives c to the HTTP server; false if the listener or ctx is done
// first, and the caller still owns c.
func (l *handoffListener) handoff(ctx context.Context, c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	case <-ctx.Done():
		return false
	}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

// handoffConn is a client connection given to the HTTP server. It replays the
// bytes the sniffer read, and tells the tracker when it is closed, which the
// HTTP server (or, after a hijack, the reverse proxy) does when it is done.
type handoffConn struct {
	net.Conn
	prefix []byte // read only by the server's reading goroutine
	closed func()
	stop   func() bool // unregisters the close-on-cancel hook
	once   sync.Once
}

func (c *handoffConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *handoffConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		if c.stop != nil {
			c.stop()
		}
		c.closed()
	})
	return err
}

func (c *handoffConn) CloseWrite() error {
	if cw, ok := c.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return nil
}

// tracker counts the connections and handlers a Serve call owns, so that
// Serve can wait for them. Unlike a sync.WaitGroup it refuses new work once
// closing, so a late handler cannot race with the final wait.
type tracker struct {
	mu      sync.Mutex
	n       int
	closing bool
	idle    chan struct{} // made by closeAndWait; closed when n drops to 0
}

func (t *tracker) add() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closing {
		return false
	}
	t.n++
	return true
}

func (t *tracker) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n--
	if t.n == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
}

// closeAndWait refuses further add calls and waits until every added piece
// of work is done.
func (t *tracker) closeAndWait() {
	t.mu.Lock()
	t.closing = true
	if t.n == 0 {
		t.mu.Unlock()
		return
	}
	idle := make(chan struct{})
	t.idle = idle
	t.mu.Unlock()
	<-idle
}
