//go:build unix

package device

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// MaxMetaSize bounds the metadata sent along with a descriptor.
const MaxMetaSize = 16 << 10

// maxFDsSeen is how many descriptors ReceiveFile makes room for, so that a
// sender passing extras gets an error and the extras get closed, rather than
// the kernel silently truncating.
const maxFDsSeen = 8

// SendFile sends f's descriptor and meta over conn in one message: the
// descriptor as SCM_RIGHTS, meta framed by a 4-byte big-endian length. f stays
// open; the receiver gets its own descriptor for the same open file.
//
// The descriptor is taken with SyscallConn, not f.Fd: Fd would switch the
// shared open file to blocking mode, and the receiver's reads could then no
// longer be interrupted by Close. Set a deadline on conn to bound the call.
func SendFile(conn *net.UnixConn, f *os.File, meta []byte) error {
	if len(meta) > MaxMetaSize {
		return fmt.Errorf("send file %s: metadata of %d bytes exceeds the limit of %d", f.Name(), len(meta), MaxMetaSize)
	}
	buf := make([]byte, 4+len(meta))
	binary.BigEndian.PutUint32(buf, uint32(len(meta)))
	copy(buf[4:], meta)

	sc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("send file %s: %w", f.Name(), err)
	}
	var n, oobn int
	var werr error
	cerr := sc.Control(func(fd uintptr) {
		oob := unix.UnixRights(int(fd))
		n, oobn, werr = conn.WriteMsgUnix(buf, oob, nil)
		if werr == nil && oobn != len(oob) {
			werr = fmt.Errorf("control message truncated (%d of %d bytes)", oobn, len(oob))
		}
	})
	if cerr != nil {
		return fmt.Errorf("send file %s: %w", f.Name(), cerr)
	}
	if werr != nil {
		return fmt.Errorf("send file %s: %w", f.Name(), werr)
	}
	// A stream socket may take part of the data; the descriptor went with the
	// first byte, the rest is plain data.
	if n < len(buf) {
		if _, err := conn.Write(buf[n:]); err != nil {
			return fmt.Errorf("send file %s: metadata: %w", f.Name(), err)
		}
	}
	return nil
}

// ReceiveFile receives exactly one descriptor and its metadata sent by
// [SendFile]. It rejects a message with no descriptor or more than one
// (closing them all), metadata over [MaxMetaSize], and bytes beyond the frame.
// The returned file is in non-blocking mode, as tun.CreateTUNFromFile expects.
// Set a deadline on conn to bound the call.
func ReceiveFile(conn *net.UnixConn) (*os.File, []byte, error) {
	buf := make([]byte, 4+MaxMetaSize)
	oob := make([]byte, unix.CmsgSpace(maxFDsSeen*4))
	n, oobn, flags, _, err := conn.ReadMsgUnix(buf, oob)
	fds, perr := parseRights(oob[:oobn])
	fail := func(format string, args ...any) (*os.File, []byte, error) {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, nil, fmt.Errorf("receive file: "+format, args...)
	}
	switch {
	case err != nil:
		return fail("%w", err)
	case perr != nil:
		return fail("parse control message: %w", perr)
	case flags&unix.MSG_CTRUNC != 0:
		return fail("control message truncated: the sender passed more than %d descriptors", maxFDsSeen)
	case flags&unix.MSG_TRUNC != 0:
		return fail("message truncated: metadata over %d bytes", MaxMetaSize)
	case len(fds) == 0 && n == 0:
		return fail("%w", io.EOF)
	case len(fds) != 1:
		return fail("got %d descriptors, want exactly 1", len(fds))
	}
	// On a stream socket the frame may arrive in pieces; read the rest
	// without ancillary data (any descriptors sent with it are dropped by the
	// kernel).
	if n < 4 {
		m, err := io.ReadFull(conn, buf[n:4])
		n += m
		if err != nil {
			return fail("read metadata length: %w", err)
		}
	}
	size := binary.BigEndian.Uint32(buf[:4])
	if size > MaxMetaSize {
		return fail("metadata of %d bytes exceeds the limit of %d", size, MaxMetaSize)
	}
	end := 4 + int(size)
	if n > end {
		return fail("%d bytes after the %d-byte frame", n-end, end)
	}
	if n < end {
		if _, err := io.ReadFull(conn, buf[n:end]); err != nil {
			return fail("read metadata: %w", err)
		}
	}
	fd := fds[0]
	// The open file's flags are shared with the sender; make sure reads are
	// pollable whatever the sender did.
	if err := unix.SetNonblock(fd, true); err != nil {
		return fail("set non-blocking: %w", err)
	}
	meta := append([]byte(nil), buf[4:end]...)
	return os.NewFile(uintptr(fd), "tun"), meta, nil
}

// parseRights returns every descriptor in the SCM_RIGHTS messages of oob,
// ignoring other control messages.
func parseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	var errs []error
	for i := range msgs {
		if msgs[i].Header.Level != unix.SOL_SOCKET || msgs[i].Header.Type != unix.SCM_RIGHTS {
			continue
		}
		got, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fds = append(fds, got...)
	}
	return fds, errors.Join(errs...)
}
