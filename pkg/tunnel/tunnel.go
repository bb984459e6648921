// Package tunnel carries connections over streams of teleproto.Frame (the
// Tunnel and Connect RPCs after their open message): it copies between a
// net.Conn and a stream (Pipe), splices two streams (Splice), and presents a
// stream as a net.Conn (NewConn). Every hop of kubectl-tele (laptop,
// manager, agent) moves bytes through it.
package tunnel

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// Stream is either end of a Tunnel or Connect RPC (grpc.ClientStream and
// grpc.ServerStream are). After its open message every message is a
// teleproto.Frame, whose cases TunnelRequest and ConnectRequest repeat
// field for field: so both RPCs' frames are sent and received as Frames,
// one type for every hop.
type Stream interface {
	SendMsg(m any) error
	RecvMsg(m any) error
}

// Recv receives the next frame of st.
func Recv(st Stream) (*teleproto.Frame, error) {
	m := new(teleproto.Frame)
	if err := st.RecvMsg(m); err != nil {
		return nil, err
	}
	return m, nil
}

// BufferSize is the largest data message Pipe sends.
const BufferSize = 128 << 10

// BufferPool is the gRPC buffer pool of every connection that carries
// tunnel messages (experimental.WithBufferPool, experimental.BufferPool).
// gRPC's default pool has tiers of 32 KiB and then 1 MiB, and clears the
// whole buffer on each Get: every data message of BufferSize took a 1 MiB
// buffer, and clearing those was 13% of the daemon's CPU in a bulk download
// (pprof). A tier just over BufferSize (the message's few bytes of framing
// included) clears an eighth of that.
var BufferPool = mem.NewTieredBufferPool(256, 4<<10, 16<<10, 32<<10, BufferSize+1<<10, 1<<20)

// Flow-control windows of every gRPC connection that carries tunnels
// (grpc.WithInitialWindowSize and friends). Setting them turns off gRPC's
// BDP estimator, which pings the peer as data arrives and resizes windows
// from the answers: those pings sat on the path of every exchange. Side by
// side with port-forward (0.8 to 1.0 ms), a sequential 1 KiB request took
// 1.9 ms through the tunnel with the estimator and 1.15 to 1.35 ms without.
// Static windows must then cover the bandwidth-delay product themselves:
// 8 MiB per stream carries 3 Gbit/s at 20 ms of RTT and 800 Mbit/s at 80 ms
// (4 MiB held one flow at 20 ms to 680 Mbit/s in make bench, where 8 MiB
// gave 970), and 32 MiB bounds what one connection's streams may buffer.
const (
	StreamWindow = 8 << 20
	ConnWindow   = 32 << 20
)

// smallBufferSize is what a flow reads into until it proves busy (see
// ReadBuffer).
const smallBufferSize = 8 << 10

// MaxDatagram is the largest UDP datagram: a smaller buffer would truncate
// one.
const MaxDatagram = 64 << 10

var (
	bufPool      = sync.Pool{New: func() any { return new([BufferSize]byte) }}
	smallBufPool = sync.Pool{New: func() any { return new([smallBufferSize]byte) }}
	dgramPool    = sync.Pool{New: func() any { return new([MaxDatagram]byte) }}
)

type closeWriter interface{ CloseWrite() error }

// ReadBuffer is a flow's buffer for reading its connection: small while the
// flow is quiet, BufferSize from the pool once a read fills the small one,
// small again once reads are short. An idle flow waits in Read with its
// buffer, and a thousand flows each holding BufferSize held 128 MiB (the
// daemon's peak in the 1,000-flow benchmark), while a busy one wants large
// messages. Not safe for concurrent use.
type ReadBuffer struct {
	small *[smallBufferSize]byte
	big   *[BufferSize]byte
	dgram *[MaxDatagram]byte // for datagrams: one size, which holds any
}

// NewReadBuffer returns a small ReadBuffer; Free gives its memory back.
func NewReadBuffer() *ReadBuffer {
	return &ReadBuffer{small: smallBufPool.Get().(*[smallBufferSize]byte)}
}

// newDatagramBuffer returns a ReadBuffer that holds any datagram, and
// keeps its size.
func newDatagramBuffer() *ReadBuffer {
	return &ReadBuffer{dgram: dgramPool.Get().(*[MaxDatagram]byte)}
}

// Bytes is the buffer for the next read.
func (r *ReadBuffer) Bytes() []byte {
	if r.dgram != nil {
		return r.dgram[:]
	}
	if r.big != nil {
		return r.big[:]
	}
	return r.small[:]
}

// Adapt sizes the buffer after a read of n bytes into Bytes().
func (r *ReadBuffer) Adapt(n int) {
	switch {
	case r.dgram != nil:
	case r.big == nil && n == smallBufferSize:
		r.big = bufPool.Get().(*[BufferSize]byte)
	case r.big != nil && n < smallBufferSize:
		bufPool.Put(r.big)
		r.big = nil
	}
}

// Free returns the buffers to their pools; r must not be used after.
func (r *ReadBuffer) Free() {
	if r.big != nil {
		bufPool.Put(r.big)
		r.big = nil
	}
	if r.small != nil {
		smallBufPool.Put(r.small)
		r.small = nil
	}
	if r.dgram != nil {
		dgramPool.Put(r.dgram)
		r.dgram = nil
	}
}

// Data wraps b as a data frame.
func Data(b []byte) *teleproto.Frame {
	return &teleproto.Frame{Msg: &teleproto.Frame_Data{Data: b}}
}

// A PipeOption changes how Pipe copies: for a server's end of a stream
// (ServerStream), for datagrams (Datagrams).
type PipeOption func(*pipeOptions)

type pipeOptions struct {
	owner     *sync.WaitGroup
	datagrams bool
	idle      time.Duration
	dropped   func(error)
}

// ServerStream is for st, a server's end of a stream, whose Recv returns
// only once its handler has returned: the copy from st runs under owner
// (which the server waits for once its handlers have returned), Pipe
// returns without waiting for it, and conn's EOF ends the flow, once what
// conn sent is forwarded (the handler's return is the stream's end;
// halfClose is not called).
func ServerStream(owner *sync.WaitGroup) PipeOption {
	return func(o *pipeOptions) { o.owner = owner }
}

// Datagrams is for a conn of datagrams (UDP): each Read is one datagram,
// read whole, sent as one message, and each message is written as one
// datagram. A datagram lost on the way (a failed write, or the
// destination's refusal of one) is told to dropped and the flow goes on,
// as it would for a socket; the stream's end ends the flow cleanly, and so
// does idle without a datagram either way.
func Datagrams(idle time.Duration, dropped func(error)) PipeOption {
	return func(o *pipeOptions) { o.datagrams, o.idle, o.dropped = true, idle, dropped }
}

// errStreamEnded ends a flow of datagrams cleanly: its stream ended.
var errStreamEnded = errors.New("stream ended")

// Pipe copies conn to st and st to conn until both directions are done, with
// TCP's half-close: conn's EOF becomes halfClose() (a client's CloseSend),
// and the stream's EOF, or a Close without error (a server stream's
// half-close), becomes conn.CloseWrite. A Close with an error, any other
// error, or a message other than data or Close ends both ways. Messages
// are sent from a reused buffer: gRPC has encoded a message when Send
// returns (there is no stats handler that could keep it). It is the one
// pump of every hop: the laptop's flows, and, with ServerStream, the
// manager's (with Datagrams, for UDP).
func Pipe(ctx context.Context, conn net.Conn, st Stream, halfClose func() error, opts ...PipeOption) error {
	var o pipeOptions
	for _, opt := range opts {
		opt(&o)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// A blocked Read on conn wakes when the flow is cancelled.
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	// Datagrams: when the last one passed, either way (unix nanoseconds).
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	// ended takes the stream's end of data: conn's write side is shut, or
	// a flow of datagrams ends.
	ended := func() bool {
		if o.datagrams {
			cancel(errStreamEnded)
			return true
		}
		if cw, ok := conn.(closeWriter); ok {
			cw.CloseWrite()
			return true
		}
		return false
	}
	down := make(chan struct{})
	recv := func() { // stream -> conn
		defer close(down)
		for {
			m, err := Recv(st)
			if err != nil {
				if !errors.Is(err, io.EOF) || !ended() {
					cancel(err)
				}
				return
			}
			var data []byte
			switch x := m.GetMsg().(type) {
			case *teleproto.Frame_Data:
				data = x.Data
			case *teleproto.Frame_Close:
				if x.Close.GetError() != "" || !ended() {
					cancel(errors.New(x.Close.GetError()))
				}
				return
			default:
				cancel(status.Errorf(codes.InvalidArgument, "tunnel: only data or close may follow the open message, not %T", x))
				return
			}
			_, err = conn.Write(data)
			Release(m)
			if o.datagrams {
				last.Store(time.Now().UnixNano())
				if err != nil {
					o.dropped(err)
				}
				continue
			}
			if err != nil {
				cancel(err)
				return
			}
		}
	}
	if o.owner != nil {
		o.owner.Go(recv)
	} else {
		go recv()
	}
	var rb *ReadBuffer
	if o.datagrams {
		rb = newDatagramBuffer()
	} else {
		rb = NewReadBuffer()
	}
	defer rb.Free()
	for { // conn -> stream
		if o.datagrams {
			deadline := time.Unix(0, last.Load()).Add(o.idle)
			if !time.Now().Before(deadline) {
				break // idle: the flow ends cleanly
			}
			conn.SetReadDeadline(deadline)
			if ctx.Err() != nil { // its wake-up may have come before
				break
			}
		}
		buf := rb.Bytes()
		n, err := conn.Read(buf)
		if n > 0 {
			if o.datagrams {
				last.Store(time.Now().UnixNano())
			}
			if serr := st.SendMsg(Data(buf[:n])); serr != nil {
				cancel(serr)
				break
			}
		}
		rb.Adapt(n)
		if err == nil {
			continue
		}
		if o.datagrams && ctx.Err() == nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue // the loop's head says whether the flow is idle
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				o.dropped(err)
				continue
			}
		}
		if errors.Is(err, io.EOF) {
			if o.owner != nil {
				break // the handler's return ends the stream
			}
			if halfClose != nil {
				halfClose()
			}
			select { // the other way may go on
			case <-down:
			case <-ctx.Done():
			}
		} else {
			if o.owner == nil && ctx.Err() == nil {
				// conn broke (its peer reset it): so does the flow's
				// far end. A client cannot end its stream but by
				// telling the server, which then returns; until then
				// the copy from the stream waits in Recv, and without
				// this the far end's connection stayed open for as
				// long as its own peer kept it.
				FailWith(st, err, teleproto.CloseReason_CLOSE_REASON_UNSPECIFIED)
			}
			cancel(err)
		}
		break
	}
	cancel(nil)
	if o.owner == nil {
		<-down
	}
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, errStreamEnded) {
		return err
	}
	return nil
}

// HalfClose is how a server stream half-closes: a Close with no error (a
// server cannot end its side of a stream but by returning).
func HalfClose(st Stream) func() error {
	return func() error {
		return st.SendMsg(&teleproto.Frame{Msg: &teleproto.Frame_Close{Close: &teleproto.Close{}}})
	}
}

// FailWith sends a Close carrying err, and the reason an agent acts on (see
// teleproto.CloseReason).
func FailWith(st Stream, err error, reason teleproto.CloseReason) error {
	return st.SendMsg(&teleproto.Frame{Msg: &teleproto.Frame_Close{Close: &teleproto.Close{Error: err.Error(), Reason: reason}}})
}

// Splice copies messages between two streams until both directions end; a
// half-close of a (io.EOF from a.Recv) is passed on as halfCloseB.
func Splice(ctx context.Context, a, b Stream, halfCloseA, halfCloseB func() error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	copyOne := func(from, to Stream, halfClose func() error) {
		for {
			m, err := Recv(from)
			if err != nil {
				if errors.Is(err, io.EOF) {
					if halfClose != nil {
						halfClose()
					}
					return
				}
				cancel(err)
				return
			}
			// Send has encoded m when it returns.
			err = to.SendMsg(m)
			Release(m)
			if err != nil {
				cancel(err)
				return
			}
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); copyOne(a, b, halfCloseB) }()
	go func() { defer wg.Done(); copyOne(b, a, halfCloseA) }()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	// An error ended it: the owners' contexts end the streams and so the copies.
	return context.Cause(ctx)
}

// ClientStream is the client end of a streaming RPC.
type ClientStream interface {
	Stream
	CloseSend() error
}

// Conn is a client stream presented as a net.Conn, for code that wants one
// (an http.Transport's dialer). CloseWrite half-closes; Close ends the RPC.
type Conn struct {
	st     ClientStream
	cancel context.CancelFunc
	rmsg   *teleproto.Frame // holds rbuf
	rbuf   []byte
	rerr   error
	mu     sync.Mutex // serializes Read
	wmu    sync.Mutex // serializes Send and CloseSend
	closed sync.Once
}

// NewConn wraps st, whose RPC cancel ends.
func NewConn(st ClientStream, cancel context.CancelFunc) *Conn {
	return &Conn{st: st, cancel: cancel}
}

func (c *Conn) Read(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.rbuf) == 0 {
		if c.rerr != nil {
			return 0, c.rerr
		}
		m, err := Recv(c.st)
		switch {
		case err != nil:
			c.rerr = err
		case m.GetClose() != nil && m.GetClose().GetError() == "":
			c.rerr = io.EOF // a server stream's half-close
		case m.GetClose() != nil:
			c.rerr = errors.New(m.GetClose().GetError())
		default:
			c.rmsg, c.rbuf = m, m.GetData()
		}
	}
	n := copy(b, c.rbuf)
	c.rbuf = c.rbuf[n:]
	if len(c.rbuf) == 0 && c.rmsg != nil {
		Release(c.rmsg)
		c.rmsg = nil
	}
	return n, nil
}

func (c *Conn) Write(b []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	written := 0
	for len(b) > 0 {
		n := min(len(b), BufferSize)
		// Send encodes before it returns; b stays the caller's.
		if err := c.st.SendMsg(Data(b[:n])); err != nil {
			return written, err
		}
		written += n
		b = b[n:]
	}
	return written, nil
}

// CloseWrite half-closes: the far end sees EOF.
func (c *Conn) CloseWrite() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.st.CloseSend()
}

func (c *Conn) Close() error {
	c.closed.Do(c.cancel)
	return nil
}

type addr string

func (a addr) Network() string { return "tunnel" }
func (a addr) String() string  { return string(a) }

func (c *Conn) LocalAddr() net.Addr  { return addr("local") }
func (c *Conn) RemoteAddr() net.Addr { return addr("tunnel") }

// Deadlines are not supported: the RPC's context bounds the stream.
func (c *Conn) SetDeadline(time.Time) error      { return nil }
func (c *Conn) SetReadDeadline(time.Time) error  { return nil }
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }
