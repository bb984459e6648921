package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// Daemons of builds before the Daemon service answered HTTP with JSON on
// the same socket. A newer plugin tells one by that, says what to do, and
// can still ask it to quit: after an upgrade the user has a daemon of the
// old build running.

// LegacyDaemonError is a daemon that speaks the control protocol before
// version 1 (HTTP).
type LegacyDaemonError struct {
	Version string // its build, from its status
}

func (e *LegacyDaemonError) Error() string {
	return fmt.Sprintf("the running daemon (kubectl-tele %s) speaks an older control protocol (HTTP) than this kubectl-tele (control protocol %d): run kubectl tele quit, then kubectl tele connect again",
		e.Version, int32(teleproto.CurrentControlVersion))
}

func legacyClient(socket string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
}

// probeLegacy returns a *LegacyDaemonError when an HTTP daemon answers on
// socket, else nil.
func probeLegacy(ctx context.Context, socket string) error {
	var st struct {
		ClientVersion string `json:"clientVersion"`
	}
	if legacyCall(ctx, socket, http.MethodGet, "/status", &st) != nil {
		return nil
	}
	return &LegacyDaemonError{Version: st.ClientVersion}
}

// quitLegacy asks an HTTP daemon to end its session.
func quitLegacy(ctx context.Context, socket string) error {
	if err := legacyCall(ctx, socket, http.MethodPost, "/quit", nil); err != nil {
		return fmt.Errorf("ask the daemon at %s to quit: %w", socket, err)
	}
	return nil
}

// legacyCall is one request to an HTTP daemon, its JSON answer into out.
func legacyCall(ctx context.Context, socket, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://daemon"+path, nil)
	if err != nil {
		return err
	}
	hc := legacyClient(socket)
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
}
