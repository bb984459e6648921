//go:build unix

package device

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// socketPair returns both ends of a connected Unix socket pair of the given type.
func socketPair(t *testing.T, typ int) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, typ, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		uc := c.(*net.UnixConn)
		uc.SetDeadline(time.Now().Add(10 * time.Second))
		t.Cleanup(func() { uc.Close() })
		return uc
	}
	return conn(fds[0]), conn(fds[1])
}

// rawSend writes data with the given descriptors attached, bypassing SendFile.
func rawSend(t *testing.T, c *net.UnixConn, data []byte, fds ...int) {
	t.Helper()
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := c.WriteMsgUnix(data, oob, nil); err != nil {
		t.Fatal(err)
	}
}

func frame(meta []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(meta)))
	return append(b, meta...)
}

func pipeFDs(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(); w.Close() })
	return r, w
}

func TestSendReceiveFile(t *testing.T) {
	for _, typ := range []struct {
		name string
		typ  int
	}{{"stream", unix.SOCK_STREAM}, {"seqpacket", unix.SOCK_SEQPACKET}} {
		for _, meta := range [][]byte{nil, []byte(`{"name":"tele0","mtu":1400}`), bytes.Repeat([]byte("m"), MaxMetaSize)} {
			t.Run(typ.name, func(t *testing.T) {
				a, b := socketPair(t, typ.typ)
				r, w := pipeFDs(t)
				if err := SendFile(a, w, meta); err != nil {
					t.Fatalf("SendFile: %v", err)
				}
				got, gotMeta, err := ReceiveFile(b)
				if err != nil {
					t.Fatalf("ReceiveFile: %v", err)
				}
				defer got.Close()
				if !bytes.Equal(gotMeta, meta) {
					t.Errorf("meta = %d bytes, want %d", len(gotMeta), len(meta))
				}
				// The received descriptor writes into the same pipe.
				w.Close()
				if _, err := got.Write([]byte("ping")); err != nil {
					t.Fatalf("write to received file: %v", err)
				}
				got.Close()
				data, err := io.ReadAll(r)
				if err != nil || string(data) != "ping" {
					t.Errorf("read back %q, %v; want ping", data, err)
				}
			})
		}
	}
}

func TestSendFileRejectsOversizeMeta(t *testing.T) {
	a, _ := socketPair(t, unix.SOCK_STREAM)
	_, w := pipeFDs(t)
	err := SendFile(a, w, make([]byte, MaxMetaSize+1))
	if err == nil || !strings.Contains(err.Error(), "exceeds the limit") {
		t.Fatalf("SendFile(oversize) = %v, want limit error", err)
	}
}

func TestReceiveFileRejects(t *testing.T) {
	r1, w1 := pipeFDs(t)
	_, w2 := pipeFDs(t)
	tests := []struct {
		name    string
		typ     int
		send    func(t *testing.T, c *net.UnixConn)
		wantErr string
	}{
		{"no descriptor", unix.SOCK_STREAM, func(t *testing.T, c *net.UnixConn) {
			rawSend(t, c, frame([]byte("x")))
		}, "got 0 descriptors"},
		{"two descriptors", unix.SOCK_STREAM, func(t *testing.T, c *net.UnixConn) {
			rawSend(t, c, frame(nil), int(w1.Fd()), int(w2.Fd()))
		}, "got 2 descriptors"},
		{"too many descriptors", unix.SOCK_STREAM, func(t *testing.T, c *net.UnixConn) {
			fds := make([]int, maxFDsSeen+2)
			for i := range fds {
				fds[i] = int(w1.Fd())
			}
			rawSend(t, c, frame(nil), fds...)
		}, "control message truncated"},
		{"oversize length", unix.SOCK_STREAM, func(t *testing.T, c *net.UnixConn) {
			b := binary.BigEndian.AppendUint32(nil, MaxMetaSize+1)
			rawSend(t, c, b, int(w1.Fd()))
		}, "exceeds the limit"},
		{"oversize datagram", unix.SOCK_SEQPACKET, func(t *testing.T, c *net.UnixConn) {
			rawSend(t, c, frame(make([]byte, MaxMetaSize+1)), int(w1.Fd()))
		}, "message truncated"},
		{"trailing bytes", unix.SOCK_STREAM, func(t *testing.T, c *net.UnixConn) {
			rawSend(t, c, append(frame([]byte("m")), "extra"...), int(w1.Fd()))
		}, "bytes after the"},
		{"short frame then EOF", unix.SOCK_STREAM, func(t *testing.T, c *net.UnixConn) {
			rawSend(t, c, []byte{0, 0}, int(w1.Fd()))
			c.CloseWrite()
		}, "read metadata length"},
		{"truncated meta then EOF", unix.SOCK_STREAM, func(t *testing.T, c *net.UnixConn) {
			rawSend(t, c, frame([]byte("abcdef"))[:6], int(w1.Fd()))
			c.CloseWrite()
		}, "read metadata"},
		{"closed", unix.SOCK_STREAM, func(t *testing.T, c *net.UnixConn) {
			c.CloseWrite()
		}, "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := socketPair(t, tt.typ)
			tt.send(t, a)
			f, _, err := ReceiveFile(b)
			if err == nil {
				f.Close()
				t.Fatalf("ReceiveFile() succeeded, want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ReceiveFile() = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
	// Every descriptor received in error was closed: the pipe's only
	// remaining writers are ours, so closing them gives the reader EOF.
	w1.Close()
	r1.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(r1); err != nil {
		t.Errorf("pipe reader: %v (a received descriptor was leaked)", err)
	}
}

func TestCheckPeer(t *testing.T) {
	a, _ := socketPair(t, unix.SOCK_STREAM)
	if err := CheckPeer(a, os.Getuid()); err != nil {
		t.Errorf("CheckPeer(own uid) = %v", err)
	}
	if err := CheckPeer(a, os.Getuid()+1); err == nil || !strings.Contains(err.Error(), "want uid") {
		t.Errorf("CheckPeer(other uid) = %v, want error", err)
	}
}
