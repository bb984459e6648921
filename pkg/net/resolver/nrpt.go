package resolver

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// nrptComment tags the NRPT rules we add, so that Restore (in any process,
// after any crash) finds them.
const nrptComment = "kubectl-tele"

// NRPT configures the Windows resolver: a Name Resolution Policy Table rule
// sends names under the routing domains to our nameserver, and the TUN
// interface gets our nameserver and the first search domain as its
// connection-specific suffix, so that single labels are tried under it.
type NRPT struct {
	// run runs one PowerShell script.
	run    func(ctx context.Context, script string) error
	device string // set by Apply, for a Restore in the same process
	log    *slog.Logger
}

// NewNRPT returns a Windows Configurator that runs PowerShell scripts with
// run.
func NewNRPT(run func(ctx context.Context, script string) error, opts Options) *NRPT {
	opts = opts.withDefaults()
	return &NRPT{run: run, log: opts.Logger}
}

// Mode implements Configurator.
func (n *NRPT) Mode() string { return "windows-nrpt" }

// psQuote quotes s as a PowerShell single-quoted string.
func psQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func psList(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = psQuote(s)
	}
	return strings.Join(q, ",")
}

// removeRulesScript removes every NRPT rule we added.
func removeRulesScript() string {
	return fmt.Sprintf("Get-DnsClientNrptRule | Where-Object { $_.Comment -eq %s } | Remove-DnsClientNrptRule -Force", psQuote(nrptComment))
}

// NRPTApplyScript returns the PowerShell script Apply runs. cfg must have
// been validated (names are then safe, and quoted besides).
func NRPTApplyScript(cfg Config) string {
	ns := cfg.Nameserver.WithZone("").String()
	var namespaces []string
	for _, d := range resolverDomains(cfg) {
		namespaces = append(namespaces, "."+d) // leading dot: names under d
	}
	lines := []string{
		"$ErrorActionPreference = 'Stop'",
		removeRulesScript(),
	}
	if len(namespaces) > 0 {
		lines = append(lines, fmt.Sprintf("Add-DnsClientNrptRule -Namespace %s -NameServers %s -Comment %s",
			psList(namespaces), psQuote(ns), psQuote(nrptComment)))
	}
	lines = append(lines, fmt.Sprintf("Set-DnsClientServerAddress -InterfaceAlias %s -ServerAddresses %s", psQuote(cfg.Device), psQuote(ns)))
	if len(cfg.Search) > 0 {
		lines = append(lines, fmt.Sprintf("Set-DnsClient -InterfaceAlias %s -ConnectionSpecificSuffix %s -RegisterThisConnectionsAddress $false",
			psQuote(cfg.Device), psQuote(cfg.Search[0])))
	}
	lines = append(lines, "Clear-DnsClientCache")
	return strings.Join(lines, "\n")
}

// NRPTRestoreScript returns the PowerShell script Restore runs. device may
// be empty (Restore in another process): the interface's settings go with
// the TUN device anyway.
func NRPTRestoreScript(device string) string {
	lines := []string{"$ErrorActionPreference = 'Stop'", removeRulesScript()}
	if device != "" {
		// The device may be gone already: that is not an error.
		lines = append(lines, fmt.Sprintf("Set-DnsClientServerAddress -InterfaceAlias %s -ResetServerAddresses -ErrorAction SilentlyContinue", psQuote(device)))
	}
	lines = append(lines, "Clear-DnsClientCache")
	return strings.Join(lines, "\n")
}

// Apply implements Configurator.
func (n *NRPT) Apply(ctx context.Context, cfg Config) error {
	cfg, err := cfg.validate(true)
	if err != nil {
		return fmt.Errorf("configure NRPT: %w", err)
	}
	n.device = cfg.Device
	if err := n.run(ctx, NRPTApplyScript(cfg)); err != nil {
		err = fmt.Errorf("configure NRPT rules and interface %s: %w", cfg.Device, err)
		if rerr := n.Restore(context.WithoutCancel(ctx)); rerr != nil {
			n.log.Warn("could not undo a failed NRPT configuration", "err", rerr)
		}
		return err
	}
	n.log.Info("resolver configured", "mode", n.Mode(), "interface", cfg.Device, "domains", resolverDomains(cfg))
	return nil
}

// Restore implements Configurator.
func (n *NRPT) Restore(ctx context.Context) error {
	if err := n.run(ctx, NRPTRestoreScript(n.device)); err != nil {
		return fmt.Errorf("remove NRPT rules %q: %w", nrptComment, err)
	}
	n.device = ""
	return nil
}
