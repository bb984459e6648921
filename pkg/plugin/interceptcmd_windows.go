//go:build windows

package plugin

import (
	"os"
	"os/exec"
)

// commandSignals are the signals kubectl tele catches while -- CMD runs.
var commandSignals = []os.Signal{os.Interrupt}

// commandGroup passes no signal on: the console delivers Ctrl-C to every
// process attached to it, CMD included, and Windows cannot send os.Interrupt
// to a process.
func commandGroup(*exec.Cmd) func(os.Signal) bool {
	return func(os.Signal) bool { return false }
}

func signalCommand(c *exec.Cmd, s os.Signal) error { return c.Process.Signal(s) }
