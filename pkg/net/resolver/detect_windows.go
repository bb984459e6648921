//go:build windows

package resolver

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Detect returns the Configurator for this system: NRPT rules and
// per-interface DNS through PowerShell.
func Detect(ctx context.Context, opts Options) Configurator {
	return NewNRPT(runPowerShell, opts)
}

func runPowerShell(ctx context.Context, script string) error {
	cmd := exec.CommandContext(ctx, "powershell.exe", "-NoProfile", "-NonInteractive", "-Command", script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("powershell: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}
