package session

import (
	"bytes"
	"net/url"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"syscall"
	"time"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// Status is what the daemon reports on its control socket, and what
// kubectl tele status prints.
type Status struct {
	Phase            string   `json:"phase"` // starting, waiting-for-device, connected, reconnecting, ending
	PID              int      `json:"pid"`
	Context          string   `json:"context"`
	Server           string   `json:"server"`
	Namespace        string   `json:"namespace"`
	ManagerNamespace string   `json:"managerNamespace"`
	ManagerPod       string   `json:"managerPod,omitempty"`
	ManagerVersion   string   `json:"managerVersion,omitempty"`
	ClientVersion    string   `json:"clientVersion"`
	Session          string   `json:"session,omitempty"`
	Device           string   `json:"device,omitempty"`
	Routes           []string `json:"routes,omitempty"`
	DNS              DNS      `json:"dns"`
	Discovery        []string `json:"discovery,omitempty"`
	LogFile          string   `json:"logFile"`
	HelperLogFile    string   `json:"helperLogFile"`
	// ControlSocket is the daemon's API, its user's alone; it also serves
	// Go's profiles under /debug/pprof/.
	ControlSocket string `json:"controlSocket,omitempty"`
	Since         string `json:"since"`
	Error         string `json:"error,omitempty"`
	// HelperRequest is what the plugin passes to the privileged helper
	// while the daemon waits for its device (phase waiting-for-device).
	HelperRequest json.RawMessage `json:"helperRequest,omitempty"`
	// Repaired says what status repaired, with no daemon running, of a
	// session that died without quit (phase disconnected).
	Repaired []string `json:"repaired,omitempty"`
}

// DNS describes the session's resolver settings.
type DNS struct {
	Mode          string   `json:"mode,omitempty"`
	Nameserver    string   `json:"nameserver,omitempty"`
	Search        []string `json:"search,omitempty"`
	ClusterDomain string   `json:"clusterDomain,omitempty"`
}

// ErrNotRunning means no daemon answers on the control socket.
var ErrNotRunning = errors.New("no session: kubectl tele connect starts one")

// Control is the plugin's client of a daemon's control socket.
type Control struct {
	socket string
	hc     *http.Client
}

// DefaultControl returns a client of this user's daemon, at the control
// socket DefaultPaths names.
func DefaultControl() (*Control, error) {
	paths, err := DefaultPaths()
	if err != nil {
		return nil, err
	}
	return NewControl(paths.ControlSocket()), nil
}

// NewControl returns a client of the daemon at socket.
func NewControl(socket string) *Control {
	return &Control{socket: socket, hc: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}}
}

func (c *Control) do(ctx context.Context, method, path string, out any) error {
	return c.doBody(ctx, method, path, nil, func(b []byte) error {
		if out == nil {
			return nil
		}
		return json.Unmarshal(b, out)
	})
}

func (c *Control) doBody(ctx context.Context, method, path string, in []byte, out func([]byte) error) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://daemon"+path, bytes.NewReader(in))
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, os.ErrNotExist) {
			return ErrNotRunning
		}
		return fmt.Errorf("daemon at %s: %w", c.socket, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return errors.New(strings.TrimSpace(string(body)))
	}
	return out(body)
}

// Intercept asks the daemon's manager for an intercept.
func (c *Control) Intercept(ctx context.Context, req *teleproto.CreateInterceptRequest) (*teleproto.Intercept, error) {
	in, err := protojson.Marshal(req)
	if err != nil {
		return nil, err
	}
	ic := &teleproto.Intercept{}
	err = c.doBody(ctx, http.MethodPost, "/intercepts", in, func(b []byte) error { return protojson.Unmarshal(b, ic) })
	return ic, err
}

// Leave ends one of the session's intercepts.
func (c *Control) Leave(ctx context.Context, name string) error {
	return c.doBody(ctx, http.MethodDelete, "/intercepts/"+url.PathEscape(name), nil, func([]byte) error { return nil })
}

// List lists the intercepts in the connected namespace.
func (c *Control) List(ctx context.Context) ([]*teleproto.Intercept, error) {
	out := &teleproto.ListInterceptsResponse{}
	err := c.doBody(ctx, http.MethodGet, "/intercepts", nil, func(b []byte) error { return protojson.Unmarshal(b, out) })
	return out.GetIntercepts(), err
}

// Status asks the daemon for its status.
func (c *Control) Status(ctx context.Context) (*Status, error) {
	var s Status
	if err := c.do(ctx, http.MethodGet, "/status", &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Quit asks the daemon to end the session, and waits until it has exited.
func (c *Control) Quit(ctx context.Context) error {
	if err := c.do(ctx, http.MethodPost, "/quit", nil); err != nil {
		return err
	}
	for {
		if _, err := c.Status(ctx); errors.Is(err, ErrNotRunning) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("daemon did not exit: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// serveControl answers on the control socket until ctx is done.
func serveControl(ctx context.Context, l net.Listener, status func() Status, quit func(), more func(*http.ServeMux)) error {
	mux := http.NewServeMux()
	more(mux)
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(status())
	})
	mux.HandleFunc("POST /quit", func(w http.ResponseWriter, _ *http.Request) {
		quit()
		w.WriteHeader(http.StatusOK)
	})
	// Go's profiles, for whoever may use the socket (its user alone):
	// curl --unix-socket SOCKET http://daemon/debug/pprof/profile?seconds=10
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
