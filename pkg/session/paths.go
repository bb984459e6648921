// Package session is the laptop's side of a connection to the cluster: the
// unprivileged daemon that holds the port-forward to the manager, serves the
// TUN device through the userspace stack and the DNS server, and answers the
// plugin on a control socket; and the plugin's client of that socket.
package session

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
)

// Paths are where a user's session keeps its sockets and logs.
type Paths struct {
	// RuntimeDir holds the sockets: /run/user/UID when it exists (the
	// helper trusts only that and /tmp/kubectl-tele-UID), else the latter.
	RuntimeDir string
	// LogDir holds daemon.log and helper.log.
	LogDir string
}

// DefaultPaths returns the current user's paths, creating them (0700).
func DefaultPaths() (Paths, error) {
	uid := os.Getuid()
	fi, err := os.Stat(filepath.Join("/run/user", strconv.Itoa(uid)))
	run := runtimeDir(runtime.GOOS, uid, err == nil && fi.IsDir(), os.TempDir())
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = run
	}
	p := Paths{RuntimeDir: run, LogDir: filepath.Join(cache, "kubectl-tele")}
	for _, d := range []string{p.RuntimeDir, p.LogDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return Paths{}, fmt.Errorf("create %s: %w", d, err)
		}
		// The control socket is the user's alone: the folder is too.
		if err := os.Chmod(d, 0o700); err != nil {
			return Paths{}, fmt.Errorf("chmod %s: %w", d, err)
		}
	}
	return p, nil
}

// runtimeDir decides where the sockets go: /run/user/UID/kubectl-tele when
// systemd made /run/user/UID (and we are not root), else
// TMP/kubectl-tele-UID. TMP is os.TempDir on Linux (tests point TMPDIR
// elsewhere) but always /tmp on darwin: there TMPDIR is a per-user folder
// under /var/folders, which the root helper does not trust (see
// device.SocketDirs), and a socket path there may not fit sun_path.
func runtimeDir(goos string, uid int, runUserExists bool, tmp string) string {
	u := strconv.Itoa(uid)
	if runUserExists && uid != 0 {
		return filepath.Join("/run/user", u, "kubectl-tele")
	}
	if goos == "darwin" {
		tmp = "/tmp"
	}
	return filepath.Join(tmp, "kubectl-tele-"+u)
}

// ControlSocket is the daemon's control socket.
func (p Paths) ControlSocket() string { return filepath.Join(p.RuntimeDir, "daemon.sock") }

// HelperSocket is where the daemon waits for the TUN device from the helper.
func (p Paths) HelperSocket() string { return filepath.Join(p.RuntimeDir, "device.sock") }

// DaemonLog is the daemon's log file.
func (p Paths) DaemonLog() string { return filepath.Join(p.LogDir, "daemon.log") }

// HelperLog is the privileged helper's log file.
func (p Paths) HelperLog() string { return filepath.Join(p.LogDir, "helper.log") }

// MountRecords holds a record of each --mount folder the daemon keeps, so
// that a folder a crashed daemon left is emptied by the next connect or
// quit (mount.CleanStale).
func (p Paths) MountRecords() string { return filepath.Join(p.RuntimeDir, "mounts") }
