package session

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kubectl-tele/kubectl-tele/pkg/managerclient"
	"github.com/kubectl-tele/kubectl-tele/pkg/teleproto"
)

// The session's link to the manager: start it if needed, arrive, keep the
// session alive with heartbeats, and, when the manager or the port-forward
// is lost, reconnect and restore the intercepts.

// manager returns the current client and session, nil between connections.
func (d *Daemon) manager() (*managerclient.Client, string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.client, d.sessionID
}

// ensureManager finds the manager's pod again, starting the manager if it is
// gone, as connect does.
func (d *Daemon) ensureManager(ctx context.Context) error {
	ectx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	m, err := managerclient.Ensure(ectx, managerclient.Options{
		Client: d.cfg.Client, Namespace: d.cfg.Manager.Namespace, Image: d.cfg.ManagerImage,
		PullSecrets: d.cfg.ImagePullSecrets, Version: d.cfg.Version, IdleTimeout: d.cfg.ManagerIdleTimeout,
		Progress: func(s string) { d.log.Info("manager: " + s) },
		Sessions: managerclient.CountSessions(d.cfg.RESTConfig, d.cfg.Client),
	})
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.cfg.Manager = *m
	d.mu.Unlock()
	d.update(func(s *teleproto.DaemonStatus) { s.ManagerPod = m.Pod })
	return nil
}

// restoreIntercepts creates the session's intercepts on a new session (the
// manager keeps them in memory only); what cannot be restored is reported.
func (d *Daemon) restoreIntercepts(ctx context.Context) {
	c, id := d.manager()
	d.mu.Lock()
	reqs := make([]*teleproto.CreateInterceptRequest, 0, len(d.intercepts))
	for _, r := range d.intercepts {
		reqs = append(reqs, r)
	}
	d.mu.Unlock()
	var lost []string
	for _, r := range reqs {
		r.SessionId = id
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		_, err := c.CreateIntercept(cctx, r)
		cancel()
		if err != nil {
			d.log.Error("intercept not restored", "intercept", r.GetName(), "err", err)
			lost = append(lost, fmt.Sprintf("%s (%v)", r.GetName(), status.Convert(err).Message()))
			d.mu.Lock()
			delete(d.intercepts, r.GetName())
			d.mu.Unlock()
			continue
		}
		d.log.Info("intercept restored", "intercept", r.GetName())
	}
	if len(lost) > 0 {
		d.update(func(s *teleproto.DaemonStatus) {
			s.Error = "intercepts ended by a manager restart: " + strings.Join(lost, "; ")
		})
	}
}

// resume reconnects to the manager that still holds this session (only the
// port-forward was lost): the session and its intercepts carry on.
func (d *Daemon) resume(ctx context.Context) bool {
	_, id := d.manager()
	if id == "" {
		return false
	}
	m := d.cfg.Manager
	c, err := managerclient.Dial(ctx, d.cfg.RESTConfig, d.cfg.Client, &m)
	if err != nil {
		return false
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.Remain(rctx, &teleproto.SessionRequest{SessionId: id}); err != nil {
		c.Close()
		return false
	}
	d.mu.Lock()
	old := d.client
	d.client = c
	d.mu.Unlock()
	if old != nil {
		old.Close()
	}
	d.log.Info("session resumed", "session", id, "manager", m.Pod)
	return true
}

// connectManager dials the manager and starts a session.
func (d *Daemon) connectManager(ctx context.Context) (*teleproto.ClusterInfo, error) {
	m := d.cfg.Manager
	c, err := managerclient.Dial(ctx, d.cfg.RESTConfig, d.cfg.Client, &m)
	if err != nil {
		return nil, err
	}
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := c.Arrive(actx, d.cfg.Namespace, d.cfg.Version)
	if err != nil {
		c.Close()
		return nil, err
	}
	d.mu.Lock()
	old := d.client
	d.client, d.sessionID = c, resp.GetSessionId()
	d.mu.Unlock()
	d.update(func(s *teleproto.DaemonStatus) {
		s.Session = resp.GetSessionId()
		s.ManagerVersion = resp.GetManagerVersion()
		s.Identity, s.ProvenBy = resp.GetIdentity().GetUsername(), resp.GetProvenBy()
	})
	if old != nil {
		old.Close()
	}
	if v := resp.GetManagerVersion(); v != d.cfg.Version {
		d.log.Warn("manager version differs from the plugin's", "manager", v, "plugin", d.cfg.Version)
	}
	d.log.Info("session started", "session", resp.GetSessionId(), "manager", m.Pod, "user", resp.GetIdentity().GetUsername(),
		"groups", resp.GetIdentity().GetGroups(), "proven_by", resp.GetProvenBy(), "cluster", resp.GetCluster())
	return resp.GetCluster(), nil
}

// heartbeatLost reports whether a failed Remain means the session or the
// link to its manager is gone, so the daemon reconnects; any other error
// (the manager refused this once) waits for the next heartbeat.
func heartbeatLost(err error) bool {
	switch status.Code(err) {
	case codes.NotFound, codes.Unavailable, codes.DeadlineExceeded:
		return true
	}
	return false
}

// keepAlive sends Remain often enough for the manager's heartbeat timeout and
// reconnects when the port-forward or the session is lost.
func (d *Daemon) keepAlive(ctx context.Context, _ *teleproto.ClusterInfo) error {
	t := time.NewTicker(d.heartbeat)
	defer t.Stop()
	for {
		c, id := d.manager()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.Done():
			d.log.Warn("port-forward to the manager lost; reconnecting")
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := c.Remain(rctx, &teleproto.SessionRequest{SessionId: id})
			cancel()
			if err == nil {
				continue
			}
			if !heartbeatLost(err) {
				d.log.Warn("heartbeat refused", "err", err, "code", status.Code(err))
				continue
			}
			d.log.Warn("heartbeat failed; reconnecting", "err", err, "code", status.Code(err))
		}
		d.setPhase(teleproto.ConnectPhase_CONNECT_PHASE_RECONNECTING)
		if err := d.reconnect(ctx); err != nil {
			return err
		}
		d.setPhase(teleproto.ConnectPhase_CONNECT_PHASE_CONNECTED)
	}
}

// reconnect tries, with a backoff, until the session is back (resumed, or
// anew with its intercepts restored) or ctx ends.
func (d *Daemon) reconnect(ctx context.Context) error {
	for backoff := 300 * time.Millisecond; ; backoff = min(backoff*2, 2*time.Second) {
		err := d.redial(ctx)
		if err == nil {
			return nil
		}
		d.log.Warn("reconnect failed", "err", err)
		if inc := (*managerclient.IncompatibleError)(nil); errors.As(err, &inc) {
			// Another version's manager took the namespace while ours was
			// gone: say so in status, and keep trying (it may be uninstalled).
			d.update(func(s *teleproto.DaemonStatus) { s.Error = err.Error() })
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}

// redialManager is one attempt of reconnect: resume the session on the
// same manager, else start the manager if need be, arrive anew and create
// the session's intercepts again.
func (d *Daemon) redialManager(ctx context.Context) error {
	if d.resume(ctx) {
		return nil
	}
	err := d.ensureManager(ctx)
	if err == nil {
		_, err = d.connectManager(ctx)
	}
	if err == nil {
		d.restoreIntercepts(ctx)
	}
	return err
}
