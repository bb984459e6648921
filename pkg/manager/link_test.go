package manager

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/kubectl-tele/kubectl-tele/pkg/manager/internal/identity"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
	"github.com/kubectl-tele/kubectl-tele/pkg/tunnel"
)

func TestLaptopLink(t *testing.T) {
	l := newLaptopLink()
	closed := func() bool {
		select {
		case <-l.gone():
			return true
		default:
			return false
		}
	}
	if !closed() {
		t.Fatal("a session with no Dials stream yet has a laptop")
	}
	d1 := l.attach()
	d2 := l.attach()
	down := l.gone()
	d1()
	d1() // twice is once
	if closed() {
		t.Fatal("gone with one of two streams still open")
	}
	d2()
	select {
	case <-down:
	default:
		t.Fatal("the channel taken while up did not close when the last stream ended")
	}
	l.attach()
	if closed() {
		t.Fatal("a reopened stream is not a laptop")
	}
}

// fakeAgentStream is an agent's Connect stream as connectToLaptop sees it:
// what the manager sends goes to sent, and it receives the frames the test
// feeds.
type fakeAgentStream struct {
	grpc.ServerStream
	ctx  context.Context
	sent chan *teleproto.Frame
	recv chan *teleproto.Frame
}

func newFakeAgentStream(ctx context.Context) *fakeAgentStream {
	return &fakeAgentStream{ctx: ctx, sent: make(chan *teleproto.Frame, 16), recv: make(chan *teleproto.Frame)}
}

func (f *fakeAgentStream) Context() context.Context { return f.ctx }
func (f *fakeAgentStream) Send(m *teleproto.Frame) error {
	f.sent <- m
	return nil
}

func (f *fakeAgentStream) SendMsg(m any) error { return f.Send(m.(*teleproto.Frame)) }

func (f *fakeAgentStream) Recv() (*teleproto.ConnectRequest, error) {
	return nil, errors.New("the open was the test's: connectToLaptop receives frames only")
}

func (f *fakeAgentStream) RecvMsg(m any) error {
	select {
	case fr, ok := <-f.recv:
		if !ok {
			return io.EOF
		}
		proto.Merge(m.(*teleproto.Frame), fr)
		return nil
	case <-f.ctx.Done():
		return f.ctx.Err()
	}
}

// TestConnectToLaptopLiveness: an intercepted connection whose laptop cannot
// take it fails with LAPTOP_GONE (the agent then serves it with the app): at
// once when the laptop's Dials stream is not open or ends, after
// laptopAnswerTimeout when the laptop stays silent. A laptop that answers
// with its own failure (nothing on its local port) passes its reason on.
func TestConnectToLaptopLiveness(t *testing.T) {
	s, c := startServer(t, testConfig(t))
	id := arrive(t, c).GetSessionId()
	ss, err := s.lookup(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	ic := testIntercept(t, ss, "echo", "echo", 8080, "x-dev=alice")
	addIntercept(t, s, ic)

	// connect runs connectToLaptop for interceptID and returns its first
	// message to the agent, and how long it took.
	connect := func(t *testing.T, interceptID string) (*teleproto.Close, time.Duration) {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		agent := newFakeAgentStream(ctx)
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- s.connectToLaptop(agent, interceptID) }()
		select {
		case m := <-agent.sent:
			took := time.Since(start)
			cancel()
			<-done
			return m.GetClose(), took
		case err := <-done:
			t.Fatalf("connectToLaptop returned %v without a message", err)
		case <-time.After(5 * time.Second):
			t.Fatal("connectToLaptop hangs")
		}
		return nil, 0
	}
	wantGone := func(t *testing.T, cl *teleproto.Close, took, within time.Duration) {
		t.Helper()
		if cl.GetReason() != teleproto.CloseReason_CLOSE_REASON_LAPTOP_GONE {
			t.Errorf("close %v, want reason LAPTOP_GONE", cl)
		}
		if took > within {
			t.Errorf("took %v, want under %v", took, within)
		}
	}
	// openDials opens the laptop's Dials stream and waits until the manager
	// counts it, once the streams of earlier subtests have ended (one of
	// them would take the request).
	openDials := func(t *testing.T, ctx context.Context) teleproto.Manager_DialsClient {
		t.Helper()
		select {
		case <-ss.link.gone():
		case <-time.After(5 * time.Second):
			t.Fatal("an earlier Dials stream is still counted")
		}
		st, err := c.Dials(ctx, &teleproto.SessionRequest{SessionId: id})
		if err != nil {
			t.Fatal(err)
		}
		// The manager sends the headers once it counts the stream.
		if _, err := st.Header(); err != nil {
			t.Fatal(err)
		}
		return st
	}

	t.Run("no Dials stream", func(t *testing.T) {
		cl, took := connect(t, ic.ID)
		wantGone(t, cl, took, 200*time.Millisecond)
	})
	t.Run("intercept ended", func(t *testing.T) {
		cl, took := connect(t, "nope/nobody/x")
		wantGone(t, cl, took, 200*time.Millisecond)
	})
	t.Run("session ended, intercept not yet removed", func(t *testing.T) {
		orphan := testIntercept(t, &session{id: "ended", user: identity.User{Name: "carol"}, hostUser: "carol", hostname: "c-laptop"}, "echo", "echo", 9090)
		addIntercept(t, s, orphan)
		cl, took := connect(t, orphan.ID)
		wantGone(t, cl, took, 200*time.Millisecond)
	})
	t.Run("Dials stream ends while the dial waits", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		st := openDials(t, ctx)
		go func() {
			if _, err := st.Recv(); err == nil {
				cancel() // the daemon dies with the request in hand
			}
		}()
		cl, took := connect(t, ic.ID)
		wantGone(t, cl, took, 500*time.Millisecond)
	})
	t.Run("laptop silent", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		st := openDials(t, ctx)
		go func() { st.Recv() }() // takes the request, never answers
		cl, took := connect(t, ic.ID)
		wantGone(t, cl, took, laptopAnswerTimeout+500*time.Millisecond)
		if took < laptopAnswerTimeout {
			t.Errorf("gave up after %v, before laptopAnswerTimeout", took)
		}
	})
	t.Run("local port closed passes through", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		st := openDials(t, ctx)
		answered := make(chan error, 1)
		go func() {
			req, err := st.Recv()
			if err != nil {
				answered <- err
				return
			}
			tst, err := c.Tunnel(ctx)
			if err == nil {
				err = tst.Send(teleproto.DialAnswerOpen(id, req.GetDialId()))
			}
			if err == nil {
				err = tunnel.FailWith(tst, errors.New("nothing answers on the laptop's localhost:7070"), teleproto.CloseReason_CLOSE_REASON_LOCAL_PORT_CLOSED)
			}
			answered <- err
		}()
		cl, _ := connect(t, ic.ID)
		select {
		case err := <-answered:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the laptop never got the dial request")
		}
		if cl.GetReason() != teleproto.CloseReason_CLOSE_REASON_LOCAL_PORT_CLOSED {
			t.Errorf("close %v, want the laptop's LOCAL_PORT_CLOSED", cl)
		}
	})
}
