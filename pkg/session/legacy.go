package session

import (
	"context"
	"encoding/json"
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
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://daemon/status", nil)
	if err != nil {
		return nil
	}
	hc := legacyClient(socket)
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var st struct {
		ClientVersion string `json:"clientVersion"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st) != nil {
		return nil
	}
	return &LegacyDaemonError{Version: st.ClientVersion}
}

// quitLegacy asks an HTTP daemon to end its session.
func quitLegacy(ctx context.Context, socket string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://daemon/quit", nil)
	if err != nil {
		return err
	}
	hc := legacyClient(socket)
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("ask the daemon at %s to quit: %w", socket, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("ask the daemon at %s to quit: %s", socket, resp.Status)
	}
	return nil
}
