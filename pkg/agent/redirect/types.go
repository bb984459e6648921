package redirect

import (
	"errors"
	"log/slog"
)

// The declarations of every platform: the agent runs only in Linux pods,
// and redirect_other.go's stubs let the one binary build for laptops.

// DefaultTableName is the nftables table used when Options.TableName is empty.
const DefaultTableName = "kubectl_tele"

// ErrOwnedByAnother is returned by Open when a table of the same name is owned
// by another live netlink socket, i.e. another agent is running in this pod.
var ErrOwnedByAnother = errors.New("another agent owns the redirect in this pod")

// Rule redirects new TCP connections arriving on Port to ToPort on the same
// pod address.
type Rule struct {
	Port   uint16 // the application's port
	ToPort uint16 // the agent's listener
}

// Options configures Open. The zero value is ready to use.
type Options struct {
	// TableName is the nftables table to own; DefaultTableName when empty.
	TableName string
	// Logger receives what the Redirector does; slog.Default() when nil.
	Logger *slog.Logger
	// NetNSPath names a network namespace (e.g. /var/run/netns/x or
	// /proc/PID/ns/net) to work in instead of the calling thread's. The agent
	// leaves it empty: it already runs in the pod's namespace. Tests use it.
	NetNSPath string
}

// Conns is what Bypassing found on a port.
type Conns struct {
	Bypassing int // established connections to the port that do not pass the redirect
	Reset     int // of those, how many were idle and reset
}
