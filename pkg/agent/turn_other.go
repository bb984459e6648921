//go:build !linux

package agent

import (
	"context"
	"io"
	"log/slog"
)

type noTurn struct{}

func (noTurn) Close() error { return nil }

// waitTurn has nothing to wait for where agents do not run: pods are Linux.
func waitTurn(context.Context, *slog.Logger) (io.Closer, error) { return noTurn{}, nil }
