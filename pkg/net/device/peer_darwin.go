package device

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// CheckPeer checks that the process at the other end of conn runs as uid; see
// the Linux version.
func CheckPeer(conn *net.UnixConn, uid int) error {
	sc, err := conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("check peer of %s: %w", conn.RemoteAddr(), err)
	}
	var cred *unix.Xucred
	var gerr error
	if err := sc.Control(func(fd uintptr) {
		cred, gerr = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
	}); err != nil {
		return fmt.Errorf("check peer of %s: %w", conn.RemoteAddr(), err)
	}
	if gerr != nil {
		return fmt.Errorf("check peer of %s: LOCAL_PEERCRED: %w", conn.RemoteAddr(), gerr)
	}
	if int(cred.Uid) != uid {
		return fmt.Errorf("check peer of %s: peer runs as uid %d, want uid %d", conn.RemoteAddr(), cred.Uid, uid)
	}
	return nil
}
