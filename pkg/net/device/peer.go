package device

import "fmt"

// peerCred is what the kernel reports about the process at the other end of
// a Unix socket: SO_PEERCRED on Linux, LOCAL_PEERCRED (struct xucred) and
// LOCAL_PEERPID on darwin.
type peerCred struct {
	// PID is the peer's process id, or 0 when the kernel did not say.
	PID int
	UID uint32
	// XucredVersion is darwin's cr_version; it must be XUCRED_VERSION (0)
	// for the rest of the structure to mean what we read. Always 0 on Linux.
	XucredVersion uint32
}

// darwinXucredVersion is XUCRED_VERSION of <sys/ucred.h>.
const darwinXucredVersion = 0

// checkPeerCred is the decision [CheckPeer] makes on every OS: the peer
// must run as uid.
func checkPeerCred(remote string, c peerCred, uid int) error {
	who := "peer"
	if c.PID > 0 {
		who = fmt.Sprintf("process %d", c.PID)
	}
	switch {
	case uid < 0:
		return fmt.Errorf("check peer of %s: invalid uid %d", remote, uid)
	case c.XucredVersion != darwinXucredVersion:
		return fmt.Errorf("check peer of %s: credentials of version %d, want %d", remote, c.XucredVersion, darwinXucredVersion)
	case int64(c.UID) != int64(uid):
		return fmt.Errorf("check peer of %s: %s runs as uid %d, want uid %d", remote, who, c.UID, uid)
	}
	return nil
}
