package session

import (
	"path/filepath"
	"testing"

	"github.com/kubectl-tele/kubectl-tele/pkg/net/device"
)

func TestRuntimeDir(t *testing.T) {
	tests := []struct {
		name    string
		goos    string
		uid     int
		runUser bool
		tmp     string
		want    string
	}{
		{"linux with systemd", "linux", 1000, true, "/tmp", "/run/user/1000/kubectl-tele"},
		{"linux without", "linux", 1000, false, "/tmp", "/tmp/kubectl-tele-1000"},
		{"linux, TMPDIR set (tests)", "linux", 1000, false, "/scratch", "/scratch/kubectl-tele-1000"},
		{"linux root", "linux", 0, true, "/tmp", "/tmp/kubectl-tele-0"},
		{"darwin ignores TMPDIR", "darwin", 501, false, "/var/folders/zz/abc/T", "/tmp/kubectl-tele-501"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := filepath.ToSlash(runtimeDir(tt.goos, tt.uid, tt.runUser, tt.tmp))
			if got != tt.want {
				t.Errorf("runtimeDir() = %q, want %q", got, tt.want)
			}
		})
	}
}

// On darwin the helper socket is in a folder the root helper accepts.
func TestDarwinSocketDirIsTrusted(t *testing.T) {
	dir := filepath.ToSlash(runtimeDir("darwin", 501, false, "/var/folders/zz/abc/T"))
	for _, d := range device.SocketDirs(501) {
		if d == dir {
			return
		}
	}
	t.Errorf("%s is not one of %v", dir, device.SocketDirs(501))
}
