//go:build unix

package plugin

import "syscall"

const syscallONofollow = syscall.O_NOFOLLOW
