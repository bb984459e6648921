package session

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

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
	if err := st.Send(&teleproto.TunnelMessage{Msg: &teleproto.TunnelMessage_Open{Open: &teleproto.Open{SessionId: id, DialId: req.GetDialId()}}}); err != nil {
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
	// An empty Open tells the agent the laptop took the connection.
	if err := st.Send(&teleproto.TunnelMessage{Msg: &teleproto.TunnelMessage_Open{Open: &teleproto.Open{}}}); err != nil {
		return
	}
	if err := tunnel.Pipe(ctx, conn, st, st.CloseSend); err != nil {
		d.log.Debug("intercepted connection broke", "intercept", req.GetIntercept(), "client", req.GetClient(), "err", err)
		// The local server learns that the connection broke, as it would
		// from the cluster client itself.
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
}

// interceptHandlers serves the plugin's intercept, leave and list.
func (d *Daemon) interceptHandlers(mux *http.ServeMux) {
	mux.HandleFunc("POST /intercepts", func(w http.ResponseWriter, r *http.Request) {
		var req teleproto.CreateInterceptRequest
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err := protojson.Unmarshal(body, &req); err != nil {
			http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
			return
		}
		c, id, ok := d.managerOrError(w)
		if !ok {
			return
		}
		req.SessionId = id
		if err := d.refuseWiretap(&req); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		ic, err := c.CreateIntercept(r.Context(), &req)
		if err == nil {
			req.Name = ic.GetName()
			d.mu.Lock()
			d.intercepts[ic.GetName()] = &req
			d.mu.Unlock()
		}
		writeProto(w, ic, err)
	})
	mux.HandleFunc("DELETE /intercepts/{name}", func(w http.ResponseWriter, r *http.Request) {
		c, id, ok := d.managerOrError(w)
		if !ok {
			return
		}
		resp, err := c.RemoveIntercept(r.Context(), &teleproto.RemoveInterceptRequest{SessionId: id, Name: r.PathValue("name")})
		if err == nil {
			d.mu.Lock()
			delete(d.intercepts, r.PathValue("name"))
			d.mu.Unlock()
		}
		writeProto(w, resp, err)
	})
	mux.HandleFunc("GET /intercepts", func(w http.ResponseWriter, r *http.Request) {
		c, id, ok := d.managerOrError(w)
		if !ok {
			return
		}
		resp, err := c.ListIntercepts(r.Context(), &teleproto.SessionRequest{SessionId: id})
		writeProto(w, resp, err)
	})
}

// managerOrError returns the current manager client and session, or
// answers 503 while the daemon is between connections.
func (d *Daemon) managerOrError(w http.ResponseWriter) (*managerclient.Client, string, bool) {
	c, id := d.manager()
	if c == nil {
		http.Error(w, "not connected to the manager (reconnecting); try again", http.StatusServiceUnavailable)
		return nil, "", false
	}
	return c, id, true
}

func writeProto(w http.ResponseWriter, m proto.Message, err error) {
	if err != nil {
		http.Error(w, status.Convert(err).Message(), http.StatusConflict)
		return
	}
	b, err := protojson.Marshal(m)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}
