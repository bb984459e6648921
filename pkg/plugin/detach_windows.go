//go:build windows

package plugin

import "syscall"

// detachedProcess is DETACHED_PROCESS: the daemon gets no console, so closing
// the terminal that ran connect does not end it.
const detachedProcess = 0x00000008

// detachedProcAttr starts the daemon detached from this console.
func detachedProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP | detachedProcess}
}
