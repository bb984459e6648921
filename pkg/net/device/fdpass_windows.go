package device

import (
	"errors"
	"fmt"
	"net"
	"os"
)

// MaxMetaSize bounds the metadata sent along with a descriptor.
const MaxMetaSize = 16 << 10

// SendFile is not supported on Windows, which has no SCM_RIGHTS; the wintun
// adapter is opened by name instead.
func SendFile(*net.UnixConn, *os.File, []byte) error {
	return fmt.Errorf("send file: %w", errors.ErrUnsupported)
}

// ReceiveFile is not supported on Windows; see [SendFile].
func ReceiveFile(*net.UnixConn) (*os.File, []byte, error) {
	return nil, nil, fmt.Errorf("receive file: %w", errors.ErrUnsupported)
}
