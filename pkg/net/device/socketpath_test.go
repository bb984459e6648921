//go:build unix && root

package device

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestValidateSocketPath(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the root tag's tests need root to create files owned by another uid: run them with make unit-root")
	}
	// A uid no real user has, so the test never touches a real user's dirs.
	uid := 3_000_000 + os.Getpid()%100_000
	base := "/tmp/kubectl-tele-" + strconv.Itoa(uid)
	if err := os.Mkdir(base, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	mustChown := func(p string, u int) {
		t.Helper()
		if err := os.Lchown(p, u, u); err != nil {
			t.Fatal(err)
		}
	}
	mustChown(base, uid)
	mkdir := func(p string, u int) {
		t.Helper()
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		mustChown(p, u)
	}
	listen := func(p string, u int) {
		t.Helper()
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		t.Cleanup(func() { l.Close() })
		mustChown(p, u)
	}
	mkdir(base+"/s", uid)
	listen(base+"/s/d.sock", uid)
	listen(base+"/top.sock", uid)
	listen(base+"/root.sock", 0)
	mkdir(base+"/rootdir", 0)
	listen(base+"/rootdir/d.sock", uid)
	if err := os.WriteFile(base+"/file", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	mustChown(base+"/file", uid)
	if err := os.Symlink(base+"/s", base+"/link"); err != nil {
		t.Fatal(err)
	}
	mustChown(base+"/link", uid)
	if err := os.Symlink(base+"/s/d.sock", base+"/link.sock"); err != nil {
		t.Fatal(err)
	}
	mustChown(base+"/link.sock", uid)

	tests := []struct {
		name    string
		path    string
		uid     int
		wantErr string
	}{
		{"in subdir", base + "/s/d.sock", uid, ""},
		{"at top", base + "/top.sock", uid, ""},
		{"socket of another user", base + "/root.sock", uid, "owned by uid 0"},
		{"dir of another user", base + "/rootdir/d.sock", uid, "owned by uid 0"},
		{"other user's base", base + "/s/d.sock", uid + 1, "must be under"},
		{"regular file", base + "/file", uid, "is a regular file, want a socket"},
		{"symlinked dir", base + "/link/d.sock", uid, "is a symbolic link"},
		{"symlinked socket", base + "/link.sock", uid, "is a symbolic link"},
		{"missing", base + "/nope.sock", uid, "no such file"},
		{"the base itself", base, uid, "must be under"},
		{"outside", "/etc/passwd", uid, "must be under"},
		{"prefix trick", base + "x/d.sock", uid, "must be under"},
		{"dot dot", base + "/../kubectl-tele-" + strconv.Itoa(uid) + "/s/d.sock", uid, "not clean"},
		{"relative", "s/d.sock", uid, "must be absolute"},
		{"too long", base + "/" + strings.Repeat("a", 120), uid, "longer than"},
		{"negative uid", base + "/s/d.sock", -1, "invalid uid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateSocketPath(tt.path, tt.uid)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateSocketPath(%q, %d) = %v, want nil", tt.path, tt.uid, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ValidateSocketPath(%q, %d) = %v, want error containing %q", tt.path, tt.uid, err, tt.wantErr)
			}
		})
	}

	// A base directory others can write to is refused whatever is in it.
	if err := os.Chmod(base, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := ValidateSocketPath(base+"/s/d.sock", uid); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("world-writable base: got %v", err)
	}
}
