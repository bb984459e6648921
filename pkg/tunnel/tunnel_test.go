package tunnel

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// pipeStream is one end of an in-memory bidirectional message stream.
type pipeStream struct {
	in      chan *teleproto.Frame
	out     chan *teleproto.Frame
	once    sync.Once
	closeCh chan struct{}
}

func streamPair() (*pipeStream, *pipeStream) {
	a2b, b2a := make(chan *teleproto.Frame, 64), make(chan *teleproto.Frame, 64)
	return &pipeStream{in: b2a, out: a2b, closeCh: make(chan struct{})}, &pipeStream{in: a2b, out: b2a, closeCh: make(chan struct{})}
}

func (p *pipeStream) Send(m *teleproto.Frame) error {
	// Copy: senders reuse their buffers once Send returns.
	if d := m.GetData(); d != nil {
		m = Data(bytes.Clone(d))
	}
	p.out <- m
	return nil
}

func (p *pipeStream) Recv() (*teleproto.Frame, error) {
	m, ok := <-p.in
	if !ok {
		return nil, io.EOF
	}
	return m, nil
}

func (p *pipeStream) SendMsg(m any) error { return p.Send(m.(*teleproto.Frame)) }

func (p *pipeStream) RecvMsg(m any) error {
	f, err := p.Recv()
	if err != nil {
		return err
	}
	proto.Merge(m.(*teleproto.Frame), f)
	return nil
}

// CloseSend ends this side's sending: the peer's Recv sees io.EOF.
func (p *pipeStream) CloseSend() error {
	p.once.Do(func() { close(p.out) })
	return nil
}

// TestPipeHalfClose: the conn's EOF reaches the stream as a half-close, and
// data still flows back afterwards.
func TestPipeHalfClose(t *testing.T) {
	tcpA, tcpB := tcpPair(t)
	local, remote := streamPair()
	done := make(chan error, 1)
	go func() { done <- Pipe(context.Background(), tcpA, local, local.CloseSend) }()

	// The laptop side writes, then half-closes.
	payload := bytes.Repeat([]byte("x"), 300<<10)
	go func() {
		tcpB.Write(payload)
		tcpB.(*net.TCPConn).CloseWrite()
	}()
	var got bytes.Buffer
	for {
		m, err := remote.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got.Write(m.GetData())
	}
	if got.Len() != len(payload) {
		t.Fatalf("stream got %d bytes, want %d", got.Len(), len(payload))
	}
	// The far side answers after the half-close, then half-closes too.
	remote.Send(Data([]byte("reply")))
	remote.CloseSend()
	b, err := io.ReadAll(tcpB)
	if err != nil || string(b) != "reply" {
		t.Fatalf("conn read %q, %v", b, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Pipe: %v", err)
	}
}

// TestPipeCloseWithError: a Close message with an error ends both ways and
// is returned.
func TestPipeCloseWithError(t *testing.T) {
	tcpA, tcpB := tcpPair(t)
	local, remote := streamPair()
	done := make(chan error, 1)
	go func() { done <- Pipe(context.Background(), tcpA, local, local.CloseSend) }()
	FailWith(remote, errors.New("dial refused"), teleproto.CloseReason_CLOSE_REASON_UNSPECIFIED)
	select {
	case err := <-done:
		if err == nil || err.Error() != "dial refused" {
			t.Fatalf("Pipe returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Pipe did not end on a Close")
	}
	tcpB.Close()
}

// TestPipeConnResetReachesThePeer: on a client's end, conn's reset is sent
// on as a Close with the error, so the server ends the flow (and resets its
// own conn) rather than leave it open; Pipe returns once it has.
func TestPipeConnResetReachesThePeer(t *testing.T) {
	tcpA, tcpB := tcpPair(t)
	local, remote := streamPair()
	done := make(chan error, 1)
	go func() { done <- Pipe(context.Background(), tcpA, local, local.CloseSend) }()
	tcpB.(*net.TCPConn).SetLinger(0)
	tcpB.Close() // a reset
	m, err := remote.Recv()
	if err != nil || m.GetClose().GetError() == "" {
		t.Fatalf("the stream got %v, %v; want a Close with the conn's error", m, err)
	}
	select {
	case err := <-done:
		t.Fatalf("Pipe returned (%v) before the server ended the stream", err)
	default:
	}
	remote.CloseSend() // the server's handler returns
	if err := <-done; err == nil {
		t.Error("Pipe returned nil after its conn was reset")
	}
}

// TestPipeServerStream: on a server's end, the stream's EOF shuts conn's
// write side, conn's EOF ends Pipe at once, and the copy from the stream,
// blocked in Recv until the handler returns, is left to its owner.
func TestPipeServerStream(t *testing.T) {
	tcpA, tcpB := tcpPair(t)
	local, remote := streamPair()
	var owner sync.WaitGroup
	done := make(chan error, 1)
	go func() { done <- Pipe(context.Background(), tcpA, local, nil, ServerStream(&owner)) }()
	remote.Send(Data([]byte("request")))
	buf := make([]byte, len("request"))
	if _, err := io.ReadFull(tcpB, buf); err != nil || string(buf) != "request" {
		t.Fatalf("conn read %q, %v", buf, err)
	}
	tcpB.Write([]byte("answer"))
	tcpB.(*net.TCPConn).CloseWrite()
	if err := <-done; err != nil {
		t.Fatalf("Pipe: %v", err)
	}
	if m, err := remote.Recv(); err != nil || string(m.GetData()) != "answer" {
		t.Fatalf("stream got %v, %v", m, err)
	}
	ownerDone := make(chan struct{})
	go func() { owner.Wait(); close(ownerDone) }()
	select {
	case <-ownerDone:
		t.Fatal("the copy from the stream ended before the stream did")
	default: // it is blocked in Recv: nothing was sent or closed since
	}
	remote.CloseSend()
	<-ownerDone
	if _, err := tcpB.Read(buf); !errors.Is(err, io.EOF) {
		t.Errorf("conn after the stream's EOF: %v, want EOF", err)
	}
}

// udpPair returns a UDP socket connected to another.
func udpPair(t *testing.T) (*net.UDPConn, *net.UDPConn) {
	t.Helper()
	b, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	a, err := net.DialUDP("udp", nil, b.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestPipeDatagrams: each datagram is one message and back, whole however
// large; a refused one is dropped and the flow goes on; the stream's end,
// or idle, ends it cleanly.
func TestPipeDatagrams(t *testing.T) {
	t.Run("whole, then the stream ends", func(t *testing.T) {
		a, b := udpPair(t)
		local, remote := streamPair()
		var owner sync.WaitGroup
		defer owner.Wait()
		done := make(chan error, 1)
		go func() {
			done <- Pipe(context.Background(), a, local, nil, ServerStream(&owner), Datagrams(time.Minute, func(err error) { t.Errorf("dropped: %v", err) }))
		}()
		big := bytes.Repeat([]byte("u"), 40000)
		remote.Send(Data(big))
		buf := make([]byte, MaxDatagram)
		n, from, err := b.ReadFrom(buf)
		if err != nil || n != len(big) {
			t.Fatalf("datagram of %d bytes, %v; want %d", n, err, len(big))
		}
		b.WriteTo(big[:20000], from)
		if m, err := remote.Recv(); err != nil || len(m.GetData()) != 20000 {
			t.Fatalf("message %d bytes, %v; want 20000", len(m.GetData()), err)
		}
		remote.CloseSend()
		if err := <-done; err != nil {
			t.Fatalf("Pipe: %v", err)
		}
	})
	t.Run("refused, then idle", func(t *testing.T) {
		a, b := udpPair(t)
		b.Close() // nothing listens: the kernel refuses what a sends
		local, remote := streamPair()
		var owner sync.WaitGroup
		dropped := make(chan error, 8)
		done := make(chan error, 1)
		go func() {
			done <- Pipe(context.Background(), a, local, nil, ServerStream(&owner), Datagrams(100*time.Millisecond, func(err error) { dropped <- err }))
		}()
		remote.Send(Data([]byte("x")))
		if err := <-dropped; !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dropped %v, want ECONNREFUSED", err)
		}
		if err := <-done; err != nil {
			t.Fatalf("Pipe after idle: %v", err)
		}
		remote.CloseSend()
		owner.Wait()
	})
}

// TestPipeRefusesOtherMessages: after the open message only data and Close
// may come; anything else ends the flow with an error that says so.
func TestPipeRefusesOtherMessages(t *testing.T) {
	tcpA, tcpB := tcpPair(t)
	local, remote := streamPair()
	done := make(chan error, 1)
	go func() { done <- Pipe(context.Background(), tcpA, local, local.CloseSend) }()
	remote.Send(teleproto.Ack())
	if err := <-done; status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Pipe: %v, want InvalidArgument", err)
	}
	tcpB.Close()
}

// TestConn: a stream read as a net.Conn, with half-close both ways.
func TestConn(t *testing.T) {
	local, remote := streamPair()
	ctx, cancel := context.WithCancel(context.Background())
	c := NewConn(local, cancel)
	remote.Send(Data([]byte("hello ")))
	remote.Send(Data([]byte("world")))
	HalfClose(remote)()
	b, err := io.ReadAll(c)
	if err != nil || string(b) != "hello world" {
		t.Fatalf("ReadAll = %q, %v", b, err)
	}
	big := bytes.Repeat([]byte("y"), 3*BufferSize+5)
	go func() { c.Write(big); c.CloseWrite() }()
	var got bytes.Buffer
	for {
		m, err := remote.Recv()
		if err != nil {
			break
		}
		if len(m.GetData()) > BufferSize {
			t.Errorf("message of %d bytes, over %d", len(m.GetData()), BufferSize)
		}
		got.Write(m.GetData())
	}
	if !bytes.Equal(got.Bytes(), big) {
		t.Fatalf("far side got %d bytes, want %d", got.Len(), len(big))
	}
	c.Close()
	if ctx.Err() == nil {
		t.Fatal("Close did not end the RPC")
	}
}

// FuzzConn feeds arbitrary message sequences to a Conn: it never panics,
// and returns exactly the data sent before the first Close.
func FuzzConn(f *testing.F) {
	f.Add([]byte{0, 3, 'a', 'b', 'c', 1, 0}, uint8(2))
	f.Add([]byte{2, 5, 'e', 'r', 'r', 'o', 'r'}, uint8(1))
	f.Fuzz(func(t *testing.T, script []byte, readSize uint8) {
		local, remote := streamPair()
		var want bytes.Buffer
		closed := false
		for len(script) >= 2 && !closed {
			kind, n := script[0]%3, int(script[1])
			script = script[2:]
			n = min(n, len(script))
			data := script[:n]
			script = script[n:]
			switch kind {
			case 0:
				remote.Send(Data(data))
				want.Write(data)
			case 1:
				HalfClose(remote)()
				closed = true
			case 2:
				FailWith(remote, errors.New(string(data)+"!"), teleproto.CloseReason_CLOSE_REASON_UNSPECIFIED)
				closed = true
			}
		}
		remote.CloseSend()
		c := NewConn(local, func() {})
		buf := make([]byte, int(readSize)+1)
		var got bytes.Buffer
		for {
			n, err := c.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				break
			}
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Fatalf("read %q, want %q", got.Bytes(), want.Bytes())
		}
	})
}

func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	acc := make(chan net.Conn, 1)
	go func() { c, _ := l.Accept(); acc <- c }()
	a, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-acc
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}
