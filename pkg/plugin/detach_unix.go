//go:build unix

package plugin

import "syscall"

// detachedProcAttr starts the daemon in a session of its own, so it outlives
// the terminal that ran connect.
func detachedProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }
