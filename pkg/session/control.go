package session

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// ErrNotRunning means no daemon answers on the control socket.
var ErrNotRunning = errors.New("no session: kubectl tele connect starts one")

// Control is the plugin's client of a daemon's control socket.
type Control struct {
	socket string
	conn   *grpc.ClientConn
	rpc    teleproto.DaemonClient
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

// NewControl returns a client of the daemon at socket; it dials on first use.
func NewControl(socket string) *Control {
	c := &Control{socket: socket}
	conn, err := grpc.NewClient("passthrough:///daemon",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		}),
		// A local socket: a daemon that starts listening is seen at once,
		// not after gRPC's backoff for remote servers (up to 2 minutes).
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{
			BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second,
		}, MinConnectTimeout: time.Second}))
	if err != nil { // only for a bad target or options, and these are fixed
		panic(fmt.Sprintf("client of the daemon at %s: %v", socket, err))
	}
	c.conn, c.rpc = conn, teleproto.NewDaemonClient(conn)
	return c
}

// Close ends the connection to the daemon.
func (c *Control) Close() error { return c.conn.Close() }

// explain turns an error of a call into what the plugin shows: no daemon,
// or the daemon's (often the
// manager's) gRPC status as it is, for the plugin to map its code. An
// answer carries the daemon's trailer (teleproto.TrailerDaemon); without
// it, an Unavailable is the socket's, and what the socket is, explain tells
// by dialing it again: gRPC's error is text.
func (c *Control) explain(ctx context.Context, err error, trailer metadata.MD) error {
	if err == nil || status.Code(err) != codes.Unavailable || len(trailer.Get(teleproto.TrailerDaemon)) > 0 {
		return err
	}
	conn, dialErr := net.DialTimeout("unix", c.socket, time.Second)
	if notRunning(dialErr) {
		return ErrNotRunning
	}
	if dialErr == nil {
		conn.Close()
	}
	return fmt.Errorf("daemon at %s: %w", c.socket, err)
}

// notRunning reports whether a dial failed for want of a daemon: no socket,
// or a socket a dead daemon left.
func notRunning(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, os.ErrNotExist)
}

// checkDaemonVersion refuses a daemon that speaks another control version.
func checkDaemonVersion(st *teleproto.DaemonStatus) error {
	if v := st.GetVersion(); v != teleproto.CurrentControlVersion {
		return versionMismatch(teleproto.CurrentControlVersion, v, st.GetClientVersion())
	}
	return nil
}

// versionMismatch is the refusal, by either end, of a plugin and a daemon of
// different control versions; build is the daemon's, when known.
func versionMismatch(plugin, daemon teleproto.ControlVersion, build string) error {
	if build != "" {
		build = " (kubectl-tele " + build + ")"
	}
	return status.Errorf(codes.FailedPrecondition,
		"this kubectl-tele speaks control protocol %d and the running daemon%s speaks %d: run kubectl tele quit, then kubectl tele connect again",
		int32(plugin), build, int32(daemon))
}

var v = teleproto.CurrentControlVersion

// Status asks the daemon for its status.
func (c *Control) Status(ctx context.Context) (*teleproto.DaemonStatus, error) {
	return c.status(ctx, false)
}

// CheckedStatus asks the daemon for its status with a self-check of names
// no older than a few seconds (it may take as long to run).
func (c *Control) CheckedStatus(ctx context.Context) (*teleproto.DaemonStatus, error) {
	return c.status(ctx, true)
}

func (c *Control) status(ctx context.Context, check bool) (*teleproto.DaemonStatus, error) {
	var tr metadata.MD
	st, err := c.rpc.Status(ctx, &teleproto.StatusRequest{Version: v, CheckNames: check}, grpc.Trailer(&tr))
	if err != nil {
		return nil, c.explain(ctx, err, tr)
	}
	if err := checkDaemonVersion(st); err != nil {
		return nil, err
	}
	return st, nil
}

// Watch calls f with the daemon's status now and on every change until f
// returns true, an error, or ctx ends. It waits for a daemon that is not
// listening yet (connect watches the daemon it just started); a daemon that
// exits ends the watch with an error.
func (c *Control) Watch(ctx context.Context, f func(*teleproto.DaemonStatus) (bool, error)) error {
	for {
		seen, err := c.watchOnce(ctx, f)
		if seen || !errors.Is(err, ErrNotRunning) && status.Code(err) != codes.Unavailable {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// watchOnce is one Watch stream; seen says it had a status.
func (c *Control) watchOnce(ctx context.Context, f func(*teleproto.DaemonStatus) (bool, error)) (seen bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := c.rpc.Watch(ctx, &teleproto.StatusRequest{Version: v}, grpc.WaitForReady(true))
	if err != nil {
		return false, c.explain(ctx, err, nil)
	}
	for {
		s, err := st.Recv()
		switch {
		case err != nil && !seen:
			return false, c.explain(ctx, err, st.Trailer())
		case err != nil && ctx.Err() != nil:
			return true, ctx.Err()
		case err != nil:
			return true, fmt.Errorf("the daemon exited: %w", err)
		}
		seen = true
		if err := checkDaemonVersion(s); err != nil {
			return true, err
		}
		if done, err := f(s); done || err != nil {
			return true, err
		}
	}
}

// Intercept asks the daemon's manager for an intercept.
//
// With mnt, the daemon also puts the container's volumes under mnt's
// folder (intercept --mount), and kubectl tele status shows them.
func (c *Control) Intercept(ctx context.Context, req *teleproto.CreateInterceptRequest, mnt *teleproto.MountRequest) (*teleproto.Intercept, error) {
	var tr metadata.MD
	ic, err := c.rpc.Intercept(ctx, &teleproto.InterceptRequest{Version: v, Intercept: req, Mount: mnt}, grpc.Trailer(&tr))
	return ic, c.explain(ctx, err, tr)
}

// Leave ends one of the session's intercepts.
func (c *Control) Leave(ctx context.Context, name string) error {
	var tr metadata.MD
	_, err := c.rpc.Leave(ctx, &teleproto.LeaveRequest{Version: v, Name: name}, grpc.Trailer(&tr))
	return c.explain(ctx, err, tr)
}

// List lists the intercepts in the connected namespace.
func (c *Control) List(ctx context.Context) ([]*teleproto.Intercept, error) {
	var tr metadata.MD
	out, err := c.rpc.List(ctx, &teleproto.ListRequest{Version: v}, grpc.Trailer(&tr))
	return out.GetIntercepts(), c.explain(ctx, err, tr)
}

// Quit asks the daemon to end the session, and waits until it has exited.
func (c *Control) Quit(ctx context.Context) error {
	var tr metadata.MD
	_, err := c.rpc.Quit(ctx, &teleproto.QuitRequest{Version: v}, grpc.Trailer(&tr))
	if err := c.explain(ctx, err, tr); err != nil {
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
