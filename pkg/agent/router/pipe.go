package router

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
)

// pipe splices client to a connection dialed for d, both ways, with
// half-close: when one side stops sending, the other side's write half is
// shut so it sees EOF, and the reverse direction goes on. prefix holds bytes
// already read from client. pipe returns when both directions are done or
// ctx is, and closes both connections.
//
// A route's connection whose laptop is gone (ErrLaptopGone) goes to the
// application instead: nothing of it has been sent anywhere yet.
func (r *Router) pipe(ctx context.Context, client net.Conn, prefix []byte, d *dest) {
	up, err := d.dialRaw(ctx)
	if d.id != "" && errors.Is(err, ErrLaptopGone) && ctx.Err() == nil {
		r.fellBack(d, client.RemoteAddr().String(), err)
		d = r.app
		up, err = d.dialRaw(ctx)
	}
	if err != nil {
		r.dialFailed(client, d, err)
		client.Close()
		return
	}
	r.laptopBack(d)
	r.splice(ctx, client, prefix, up, nil, d)
}

// dial connects to d for client within its bound; a failure is counted and
// logged, and gives nil.
func (r *Router) dial(ctx context.Context, client net.Conn, d *dest) net.Conn {
	up, err := d.dialRaw(ctx)
	if err != nil {
		r.dialFailed(client, d, err)
		return nil
	}
	return up
}

func (r *Router) dialFailed(client net.Conn, d *dest, err error) {
	d.c.errors.Add(1)
	r.log.Warn("cannot pass connection through", "client", client.RemoteAddr().String(), "to", d.name(), "err", err)
}

// splice is pipe with up already dialed; upFirst holds bytes already read
// from up, which client must see first. It closes both connections.
func (r *Router) splice(ctx context.Context, client net.Conn, prefix []byte, up net.Conn, upFirst []byte, d *dest) {
	defer client.Close()
	defer up.Close()
	log := r.log.With("client", client.RemoteAddr().String(), "to", d.name())
	d.c.conns.Add(1)
	stop := context.AfterFunc(ctx, func() {
		client.Close()
		up.Close()
	})
	defer stop()

	if len(upFirst) > 0 {
		if _, err := client.Write(upFirst); err != nil {
			log.Debug("pass-through ended", "err", err)
			return
		}
	}
	if len(prefix) > 0 {
		if _, err := up.Write(prefix); err != nil {
			log.Debug("pass-through ended", "err", err)
			return
		}
	}
	var wg sync.WaitGroup
	wg.Go(func() { copyHalf(up, client) })
	copyHalf(client, up)
	wg.Wait()
	log.Debug("pass-through done")
}

type closeWriter interface{ CloseWrite() error }

// copyHalf copies src to dst until src's EOF, then shuts dst's write half.
// On an error (a reset, a broken pipe, a broken tunnel) nothing more will
// flow either way, so it resets both, which also ends the other direction:
// each peer learns that the connection broke, as it would without the agent.
// A dst without half-close (some tunnel streams lack it) is closed: that is
// the only way left to tell the peer we are done.
func copyHalf(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	if err == nil {
		if cw, ok := dst.(closeWriter); ok && cw.CloseWrite() == nil {
			return
		}
		dst.Close()
		src.Close()
		return
	}
	abort(dst)
	abort(src)
}

// abort closes c with a reset where c is TCP.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}
