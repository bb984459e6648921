//go:build unix

package plugin

import (
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// commandSignals are the signals kubectl tele catches while -- CMD runs:
// those that would otherwise end it before it ends the intercept.
var commandSignals = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT}

// commandGroup decides c's process group, and so which signals to pass it
// (see superviseCommand). When kubectl tele is the terminal's foreground
// job, CMD joins it: it can read the terminal, and Ctrl-C (SIGINT), Ctrl-\
// (SIGQUIT) and a hang-up reach it from the terminal itself, so only
// SIGTERM, which no terminal sends, is passed on (passing the others too
// would deliver each twice, and many programs take a second Ctrl-C as "stop
// now"). Otherwise (an IDE, a script, a service manager) CMD gets a process
// group of its own, and every signal reaches it once, from kubectl tele:
// the whole group, as a terminal's Ctrl-C reaches a job (a script's server
// and its shell alike).
func commandGroup(c *exec.Cmd) func(os.Signal) bool {
	if inForegroundJob() {
		return func(s os.Signal) bool { return s == unix.SIGTERM }
	}
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return func(os.Signal) bool { return true }
}

// inForegroundJob reports whether a terminal on the standard streams has
// this process's group in the foreground.
func inForegroundJob() bool {
	pgrp := unix.Getpgrp()
	for _, fd := range []int{0, 1, 2} {
		if fg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP); err == nil && fg == pgrp {
			return true
		}
	}
	return false
}

// signalCommand delivers s to c: to its process group when it has its own
// (see commandGroup).
func signalCommand(c *exec.Cmd, s os.Signal) error {
	sig, ok := s.(syscall.Signal)
	if !ok || c.SysProcAttr == nil || !c.SysProcAttr.Setpgid {
		return c.Process.Signal(s)
	}
	return unix.Kill(-c.Process.Pid, sig)
}
