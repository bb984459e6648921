package session

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubectl-tele/kubectl-tele/pkg/managerclient"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
	"github.com/kubectl-tele/kubectl-tele/pkg/tunnel"
)

// dialsLoop answers the agents' connection requests for this laptop: each is
// dialed to the laptop's local port and carried over a Tunnel stream.
func (d *Daemon) dialsLoop(ctx context.Context) error {
	// While no Dials stream is open the manager has the app serve this
	// laptop's intercepts, so the stream is reopened soon (1 s at most).
	for backoff := 200 * time.Millisecond; ; backoff = min(backoff*2, time.Second) {
		c, id := d.manager()
		if c != nil {
			st, err := c.Dials(ctx, &teleproto.SessionRequest{SessionId: id})
			for err == nil {
				var req *teleproto.DialRequest
				req, err = st.Recv()
				if err == nil {
					backoff = 200 * time.Millisecond
					go d.answerDial(ctx, req)
				}
			}
			if ctx.Err() != nil {
				return nil
			}
			d.log.Debug("dials stream ended", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
}

// answerDial dials the intercept's local port and carries the connection; a
// failure goes back to the agent, which answers 502 at once.
func (d *Daemon) answerDial(ctx context.Context, req *teleproto.DialRequest) {
	c, id := d.manager()
	if c == nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.Tunnel(ctx)
	if err != nil {
		return
	}
	if err := st.Send(teleproto.DialAnswerOpen(id, req.GetDialId())); err != nil {
		return
	}
	addr := fmt.Sprintf("127.0.0.1:%d", req.GetLocalPort())
	// A local server answers a SYN on loopback at once or not at all; the
	// agent gives the whole dial 3 s (router.Config.LaptopDialTimeout).
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		d.log.Info("intercepted connection: nothing answers locally", "intercept", req.GetIntercept(), "addr", addr, "err", err)
		// The laptop is here and the developer's server is not: the
		// agent answers 502 saying so, rather than serve with the app.
		tunnel.FailWith(st, fmt.Errorf("nothing answers on the laptop's localhost:%d (intercept %s): start your local server there", req.GetLocalPort(), req.GetIntercept()),
			teleproto.CloseReason_CLOSE_REASON_LOCAL_PORT_CLOSED)
		st.CloseSend()
		for { // until the manager ends the stream
			if _, err := st.Recv(); err != nil {
				return
			}
		}
	}
	defer conn.Close()
	// The ack tells the agent the laptop took the connection.
	if err := st.SendMsg(teleproto.Ack()); err != nil {
		return
	}
	if err := tunnel.Pipe(ctx, conn, st, st.CloseSend); err != nil {
		d.log.Debug("intercepted connection broke", "intercept", req.GetIntercept(), "err", err)
		// The local server learns that the connection broke, as it would
		// from the cluster client itself.
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
}

// connectedManager returns the current manager client and session, or
// Unavailable while the daemon is between connections.
func (d *Daemon) connectedManager() (*managerclient.Client, string, error) {
	c, id := d.manager()
	if c == nil {
		return nil, "", status.Error(codes.Unavailable, "not connected to the manager (reconnecting); try again")
	}
	return c, id, nil
}
