//go:build !linux

package redirect

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"
)

// The agent runs only in Linux pods; this file lets the one kubectl-tele
// binary, which carries the agent, build for macOS and Windows laptops.

// Redirector is never created outside Linux.
type Redirector struct{}

// Open fails: nftables exists only on Linux.
func Open(context.Context, Options) (*Redirector, error) {
	return nil, fmt.Errorf("nftables redirect: not supported on %s (the agent runs in Linux pods)", runtime.GOOS)
}

// Set fails: see Open.
func (*Redirector) Set([]Rule) error {
	return errors.New("nftables redirect: not supported on " + runtime.GOOS)
}

// Rules returns nothing.
func (*Redirector) Rules() []Rule { return nil }

// Bypassing fails: see Open.
func (*Redirector) Bypassing(uint16, time.Duration) (Conns, error) {
	return Conns{}, errors.New("nftables redirect: not supported on " + runtime.GOOS)
}

// Close does nothing.
func (*Redirector) Close() error { return nil }
