//go:build !linux && !darwin

package device

import (
	"errors"
	"fmt"
	"net"
	"runtime"
)

// CheckPeer is implemented on Linux and darwin only.
func CheckPeer(conn *net.UnixConn, uid int) error {
	return fmt.Errorf("check peer of %s on %s: %w", conn.RemoteAddr(), runtime.GOOS, errors.ErrUnsupported)
}
