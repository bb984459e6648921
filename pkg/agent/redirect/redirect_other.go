//go:build !linux

package redirect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"
)

// The agent runs only in Linux pods; this file lets the one kubectl-tele
// binary, which carries the agent, build for macOS and Windows laptops.

// DefaultTableName is the nftables table used when Options.TableName is empty.
const DefaultTableName = "kubectl_tele"

// ErrOwnedByAnother is returned by Open when another agent owns the redirect.
var ErrOwnedByAnother = errors.New("another agent owns the redirect in this pod")

// Rule redirects new TCP connections arriving on Port to ToPort.
type Rule struct {
	Port   uint16 // the application's port
	ToPort uint16 // the agent's listener
}

// Options configures Open.
type Options struct {
	TableName string
	Logger    *slog.Logger
	NetNSPath string
}

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

// Conns is what Bypassing found on a port.
type Conns struct {
	Bypassing int
	Reset     int
}

// Bypassing fails: see Open.
func (*Redirector) Bypassing(uint16, time.Duration) (Conns, error) {
	return Conns{}, errors.New("nftables redirect: not supported on " + runtime.GOOS)
}

// Close does nothing.
func (*Redirector) Close() error { return nil }
