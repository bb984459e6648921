//go:build unix

package session

import "syscall"

func umask(m int) int { return syscall.Umask(m) }
