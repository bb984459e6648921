package session

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kubectl-tele/kubectl-tele/pkg/mount"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// controlServer is the daemon's Daemon service for the plugin. Errors of
// the manager go back as they came, code and message.
type controlServer struct {
	teleproto.UnimplementedDaemonServer
	d *Daemon
	// life ends with the control socket: Watch streams end with it.
	life context.Context
}

// versioned is every request of the Daemon service.
type versioned interface {
	GetVersion() teleproto.ControlVersion
}

// checkVersion refuses a unary call of a plugin of another control
// version: every request carries one. Quit passes whatever it carries.
func (s *controlServer) checkVersion(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if r, ok := req.(versioned); ok && info.FullMethod != teleproto.Daemon_Quit_FullMethodName {
		if err := s.checkPluginVersion(r.GetVersion()); err != nil {
			return nil, err
		}
	} else if !ok {
		return nil, status.Errorf(codes.Internal, "%s: a request without a version", info.FullMethod)
	}
	return handler(ctx, req)
}

// answered is the trailer of every answer (teleproto.TrailerDaemon).
var answered = metadata.Pairs(teleproto.TrailerDaemon, strconv.Itoa(int(teleproto.CurrentControlVersion)))

// markAnswer sets the trailer that says the daemon answered a unary call.
func markAnswer(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	_ = grpc.SetTrailer(ctx, answered) // fails only outside a call
	return handler(ctx, req)
}

// markStreamAnswer sets the trailer that says the daemon answered a stream.
func markStreamAnswer(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ss.SetTrailer(answered)
	return handler(srv, ss)
}

// checkPluginVersion refuses a plugin of another control version.
func (s *controlServer) checkPluginVersion(v teleproto.ControlVersion) error {
	if v != teleproto.CurrentControlVersion {
		return versionMismatch(v, teleproto.CurrentControlVersion, s.d.cfg.Version)
	}
	return nil
}

func (s *controlServer) Status(ctx context.Context, r *teleproto.StatusRequest) (*teleproto.DaemonStatus, error) {
	if r.GetCheckNames() {
		s.d.refreshNames(ctx)
	}
	st, _ := s.d.snapshot()
	st.Mounts = s.d.mountStatuses()
	return st, nil
}

func (s *controlServer) Watch(r *teleproto.StatusRequest, stream grpc.ServerStreamingServer[teleproto.DaemonStatus]) error {
	if err := s.checkPluginVersion(r.GetVersion()); err != nil {
		return err
	}
	for {
		st, changed := s.d.snapshot()
		if err := stream.Send(st); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-stream.Context().Done():
			return nil
		case <-s.life.Done():
			return nil
		}
	}
}

func (s *controlServer) Intercept(ctx context.Context, r *teleproto.InterceptRequest) (*teleproto.Intercept, error) {
	c, id, err := s.d.connectedManager()
	if err != nil {
		return nil, err
	}
	req := r.GetIntercept()
	if req == nil {
		return nil, status.Error(codes.InvalidArgument, "no intercept in the request")
	}
	req.SessionId = id
	// The volumes are read while the manager attaches the agents: --mount
	// adds the longer of the two to intercept, not their sum.
	type mounted struct {
		m   *mount.Mount
		err error
	}
	var mc chan mounted
	if dir := r.GetMount().GetDir(); dir != "" {
		mc = make(chan mounted, 1)
		go func() {
			m, err := s.d.startMount(ctx, req, dir)
			mc <- mounted{m, err}
		}()
	}
	ic, err := c.CreateIntercept(ctx, req)
	var mnt mounted
	if mc != nil {
		mnt = <-mc
	}
	if err != nil {
		if mnt.m != nil {
			s.d.closeMount(mnt.m)
		}
		return nil, err
	}
	if mnt.err != nil {
		// The intercept is not kept without the mount it was asked with.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, lerr := c.RemoveIntercept(lctx, &teleproto.RemoveInterceptRequest{SessionId: id, Name: ic.GetName()}); lerr != nil {
			s.d.log.Warn("remove the intercept whose --mount failed", "intercept", ic.GetName(), "err", lerr)
		}
		if _, ok := status.FromError(mnt.err); ok {
			return nil, mnt.err
		}
		return nil, status.Error(codes.FailedPrecondition, mnt.err.Error())
	}
	req.Name = ic.GetName()
	s.d.mu.Lock()
	s.d.intercepts[ic.GetName()] = req
	s.d.mu.Unlock()
	if mnt.m != nil {
		s.d.keepMount(ic.GetName(), mnt.m)
	}
	return ic, nil
}

func (s *controlServer) Leave(ctx context.Context, r *teleproto.LeaveRequest) (*teleproto.LeaveResponse, error) {
	c, id, err := s.d.connectedManager()
	if err != nil {
		return nil, err
	}
	if _, err := c.RemoveIntercept(ctx, &teleproto.RemoveInterceptRequest{SessionId: id, Name: r.GetName()}); err != nil {
		return nil, err
	}
	s.d.mu.Lock()
	delete(s.d.intercepts, r.GetName())
	s.d.mu.Unlock()
	s.d.endMount(r.GetName())
	return &teleproto.LeaveResponse{}, nil
}

func (s *controlServer) List(ctx context.Context, _ *teleproto.ListRequest) (*teleproto.ListInterceptsResponse, error) {
	c, id, err := s.d.connectedManager()
	if err != nil {
		return nil, err
	}
	return c.ListIntercepts(ctx, &teleproto.SessionRequest{SessionId: id})
}

// Quit takes no version: it is how a user ends a daemon of another one.
func (s *controlServer) Quit(context.Context, *teleproto.QuitRequest) (*teleproto.QuitResponse, error) {
	s.d.Quit()
	return &teleproto.QuitResponse{}, nil
}

// serveControl answers on the control socket until ctx is done: gRPC (the
// Daemon service) over HTTP/2 without TLS, and, on HTTP/1, Go's profiles for
// whoever may use the socket (its user alone):
// curl --unix-socket SOCKET http://daemon/debug/pprof/profile?seconds=10
func serveControl(ctx context.Context, l net.Listener, d *Daemon) error {
	cs := &controlServer{d: d, life: ctx}
	gs := grpc.NewServer(grpc.ChainUnaryInterceptor(markAnswer, cs.checkVersion), grpc.StreamInterceptor(markStreamAnswer))
	teleproto.RegisterDaemonServer(gs, cs)
	defer gs.Stop() // after the HTTP server: ends what it still serves
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
				gs.ServeHTTP(w, r)
				return
			}
			mux.ServeHTTP(w, r)
		}),
		Protocols:         &protocols,
		ReadHeaderTimeout: 5 * time.Second,
	}
	shut := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(shut)
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	err := srv.Serve(l)
	if stop() { // Serve failed on its own
		return err
	}
	<-shut
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
