package device

import (
	"fmt"
	"net"

	"golang.org/x/sys/unix"
)

// CheckPeer checks that the process at the other end of conn runs as uid;
// see the Linux version. darwin has no SO_PEERCRED: LOCAL_PEERCRED gives
// the peer's effective uid (struct xucred) as it was at connect(2) or
// listen(2), and LOCAL_PEERPID its pid, for the message only.
func CheckPeer(conn *net.UnixConn, uid int) error {
	sc, err := conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("check peer of %s: %w", conn.RemoteAddr(), err)
	}
	var cred *unix.Xucred
	pid := 0
	var gerr error
	if err := sc.Control(func(fd uintptr) {
		cred, gerr = unix.GetsockoptXucred(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERCRED)
		if p, err := unix.GetsockoptInt(int(fd), unix.SOL_LOCAL, unix.LOCAL_PEERPID); err == nil {
			pid = p
		}
	}); err != nil {
		return fmt.Errorf("check peer of %s: %w", conn.RemoteAddr(), err)
	}
	if gerr != nil {
		return fmt.Errorf("check peer of %s: LOCAL_PEERCRED: %w", conn.RemoteAddr(), gerr)
	}
	return checkPeerCred(fmt.Sprint(conn.RemoteAddr()), peerCred{PID: pid, UID: cred.Uid, XucredVersion: cred.Version}, uid)
}
