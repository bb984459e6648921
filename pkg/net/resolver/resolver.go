// Package resolver points the laptop's OS resolver at the session's DNS
// server for cluster names, and puts the original configuration back
// exactly. It runs in the short-lived root helper, so everything Restore
// needs is found on disk (or in the OS) rather than in memory.
package resolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
)

// Config is what the OS resolver should be told.
type Config struct {
	// Nameserver is our DNS server's address (inside the TUN routes).
	Nameserver netip.Addr
	// Search is the search list, as a pod of the namespace has it, e.g.
	// demo.svc.cluster.local svc.cluster.local cluster.local.
	Search []string
	// Domains are routing domains for split-DNS systems: names under them
	// go to Nameserver (the cluster domain, plus namespaces so that
	// "svc.ns" resolves).
	Domains []string
	// Device is the TUN device, for per-link configuration.
	Device string
	// Port, when not 0, is the port Nameserver serves on instead of 53:
	// macOS resolver files point at the daemon's loopback server
	// (127.0.0.1 and a port of its own). Only ResolverDir can name a port;
	// the helper sets one only on macOS.
	Port uint16
}

// Configurator changes the OS resolver configuration and undoes it.
type Configurator interface {
	// Apply configures the OS resolver. If a previous session left its
	// configuration behind, Apply undoes that first.
	Apply(ctx context.Context, cfg Config) error
	// Restore undoes Apply. It may run in another process than Apply,
	// and does nothing if there is nothing to undo.
	Restore(ctx context.Context) error
	// Mode names the mechanism, for status output.
	Mode() string
}

// Options says where a Configurator keeps and finds its files. The zero
// value is the real system.
type Options struct {
	// Root is prepended to every system path (/etc/resolv.conf,
	// /etc/resolver, /run/systemd/resolve); "" means "/". For tests.
	Root string
	// StateDir keeps backups and state between Apply and Restore; ""
	// means Root/var/lib/kubectl-tele.
	StateDir string
	// BackupPath is where resolv.conf mode saves the original file; ""
	// means StateDir/resolv.conf.backup.
	BackupPath string
	Logger     *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.StateDir == "" {
		o.StateDir = filepath.Join(o.Root, "var/lib/kubectl-tele")
	}
	if o.BackupPath == "" {
		o.BackupPath = filepath.Join(o.StateDir, "resolv.conf.backup")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Marker is a line in every file kubectl-tele writes into the system's
// resolver configuration, so that a file left by a crashed session is
// recognised as ours.
const Marker = "# kubectl-tele: managed by a kubectl-tele session"

// validName matches DNS names and device names we are willing to write
// into configuration files and command lines.
var validName = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$`)

var errInvalidConfig = errors.New("invalid resolver configuration")

// validate checks cfg and returns it with names normalised (lower case, no
// trailing dot, duplicates removed).
func (cfg Config) validate(needDevice bool) (Config, error) {
	if !cfg.Nameserver.IsValid() {
		return cfg, fmt.Errorf("nameserver missing: %w", errInvalidConfig)
	}
	if needDevice && !validName.MatchString(cfg.Device) {
		return cfg, fmt.Errorf("device %q: %w", cfg.Device, errInvalidConfig)
	}
	var err error
	if cfg.Search, err = cleanNames(cfg.Search); err != nil {
		return cfg, err
	}
	if cfg.Domains, err = cleanNames(cfg.Domains); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func cleanNames(names []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		n = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(n), "."))
		if n == "" || seen[n] {
			continue
		}
		if !validName.MatchString(n) || strings.Contains(n, "..") || len(n) > 253 {
			return nil, fmt.Errorf("domain %q: %w", n, errInvalidConfig)
		}
		seen[n] = true
		out = append(out, n)
	}
	return out, nil
}
