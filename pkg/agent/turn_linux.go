//go:build linux

package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"syscall"
	"time"
)

// turnSocket is an abstract Unix socket: its name lives in the network
// namespace, which a pod's containers share, and the kernel frees it when
// its process ends, however it ends. It needs no capability, so agents with
// and without NET_ADMIN take turns alike.
const turnSocket = "@kubectl-tele-agent"

// waitTurn waits until no other agent runs in the pod, and holds the pod's
// turn until the returned Closer is closed. An agent that takes over from an
// earlier one (refused by a new manager, it exits within seconds) starts
// while that one still runs: the two must not both serve the agent ports or
// the redirect.
func waitTurn(ctx context.Context, log *slog.Logger) (io.Closer, error) {
	for logged := false; ; logged = true {
		l, err := (&net.ListenConfig{}).Listen(ctx, "unix", turnSocket)
		if err == nil {
			return l, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return nil, err
		}
		if !logged {
			log.Info("waiting for the earlier agent in this pod to exit")
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
