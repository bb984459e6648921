package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kubectl-tele/kubectl-tele/pkg/match"
)

// goneDial fails as a route's Dial does when the manager says the laptop is
// gone.
func goneDial(context.Context) (net.Conn, error) {
	return nil, fmt.Errorf("intercept alice: %w: the laptop is not connected", ErrLaptopGone)
}

// TestLaptopGone: a request or connection whose laptop is gone is served by
// the app at once, body and all, and counted as a fallback; a laptop that is
// there but has nothing on its local port still gets the fast 502
// (TestBadGateway); a laptop that comes back takes its requests again.
func TestLaptopGone(t *testing.T) {
	app := newBackend(t, "app")
	hang := func(ctx context.Context) (net.Conn, error) { <-ctx.Done(); return nil, ctx.Err() }
	tests := []struct {
		name   string
		dial   func(context.Context) (net.Conn, error)
		client *http.Client
		within time.Duration
	}{
		{"manager says gone, http1", goneDial, h1Client(t), time.Second},
		{"manager says gone, h2c", goneDial, h2cClient(t), time.Second},
		{"laptop silent past LaptopDialTimeout", hang, h1Client(t), 300*time.Millisecond + time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := startRouter(t, Config{AppAddr: app.addr(), LaptopDialTimeout: 300 * time.Millisecond},
				Route{ID: "alice", Match: match.MustParse("x-dev=alice"), Dial: tt.dial})
			start := time.Now()
			code, body := get(t, tt.client, r.url("/?q=1"), "X-Dev", "alice")
			if d := time.Since(start); d > tt.within {
				t.Errorf("answer took %v, want under %v", d, tt.within)
			}
			if code != http.StatusOK || !strings.HasPrefix(body, "app ") || !strings.HasSuffix(body, "query=q=1") {
				t.Errorf("got %d %q, want the app's answer to the request", code, body)
			}
			s := r.Stats()
			if s.Routes["alice"].Fallbacks != 1 || s.Routes["alice"].Errors != 0 || s.App.Requests != 1 {
				t.Errorf("stats = %+v, want 1 fallback, no error, 1 app request", s)
			}
		})
	}

	t.Run("a request body reaches the app whole", func(t *testing.T) {
		r := startRouter(t, Config{AppAddr: app.addr()}, Route{ID: "alice", Match: match.MustParse("x-dev=alice"), Dial: goneDial})
		req, _ := http.NewRequest(http.MethodPost, r.url("/stream"), strings.NewReader("one\ntwo\n"))
		req.Header.Set("X-Dev", "alice")
		resp, err := h1Client(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got, want := string(b), "app:one\napp:two\n"; resp.StatusCode != http.StatusOK || got != want {
			t.Errorf("got %d %q, want %q", resp.StatusCode, got, want)
		}
	})

	t.Run("global route: the connection goes to the app", func(t *testing.T) {
		echo := startEcho(t, "app\n")
		r := startRouter(t, Config{AppAddr: echo}, Route{ID: "alice", Dial: goneDial})
		if got, want := rawExchange(t, r.addr, "\x00binary"), "app\n\x00binary"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
		if s := r.Stats(); s.Routes["alice"].Fallbacks != 1 || s.App.Conns != 1 || s.Routes["alice"].Errors != 0 {
			t.Errorf("stats = %+v, want 1 fallback spliced to the app", s)
		}
	})

	t.Run("the laptop comes back", func(t *testing.T) {
		laptop := newBackend(t, "laptop")
		var up atomic.Bool
		dial := func(ctx context.Context) (net.Conn, error) {
			if !up.Load() {
				return goneDial(ctx)
			}
			return dialTo(laptop.addr())(ctx)
		}
		r := startRouter(t, Config{AppAddr: app.addr()}, Route{ID: "alice", Match: match.MustParse("x-dev=alice"), Dial: dial})
		c := h1Client(t)
		for i, want := range []string{"app ", "app ", "laptop ", "laptop "} {
			if i == 2 {
				up.Store(true)
				// The app's connection stays pooled for the app; the
				// route's own pool has nothing, so it dials the laptop.
			}
			if _, body := get(t, c, r.url("/"), "X-Dev", "alice"); !strings.HasPrefix(body, want) {
				t.Errorf("request %d answered %q, want %q", i, body, want)
			}
		}
		if s := r.Stats(); s.Routes["alice"].Fallbacks != 2 || s.Routes["alice"].Requests != 4 {
			t.Errorf("stats = %+v, want 2 fallbacks of 4 requests", s)
		}
	})

	t.Run("a plain dial error is not a fallback", func(t *testing.T) {
		refused := func(context.Context) (net.Conn, error) {
			return nil, errors.New("nothing answers on the laptop's localhost:7070")
		}
		r := startRouter(t, Config{AppAddr: app.addr()}, Route{ID: "alice", Match: match.MustParse("x-dev=alice"), Dial: refused})
		if code, body := get(t, h1Client(t), r.url("/"), "X-Dev", "alice"); code != http.StatusBadGateway || !strings.Contains(body, "nothing answers on the laptop") {
			t.Errorf("got %d %q, want the 502", code, body)
		}
		if s := r.Stats(); s.Routes["alice"].Fallbacks != 0 || s.Routes["alice"].Errors != 1 {
			t.Errorf("stats = %+v, want 1 error, no fallback", s)
		}
	})
}
