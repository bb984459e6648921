package device

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// SocketDirs returns the directories under which the root helper accepts the
// daemon's socket for user uid: /run/user/UID (systemd's XDG_RUNTIME_DIR) and
// /tmp/kubectl-tele-UID.
//
// $XDG_RUNTIME_DIR itself is deliberately not consulted: the helper runs as
// root and the environment is the user's to set, so it must not widen what
// root trusts. Where it is set by systemd it is /run/user/UID anyway.
func SocketDirs(uid int) []string {
	u := strconv.Itoa(uid)
	return []string{"/run/user/" + u, "/tmp/kubectl-tele-" + u}
}

// ValidateSocketPath checks that path is a Unix socket the invoking user uid
// (SUDO_UID) controls: absolute, clean, under one of [SocketDirs], with the
// directory owned by uid and not writable by group or others, no symbolic
// link below it, and the socket itself owned by uid.
//
// The check is made before connecting, so a user could still swap the socket
// afterwards; the helper should also call [CheckPeer] on the connection.
func ValidateSocketPath(path string, uid int) error {
	if uid < 0 {
		return fmt.Errorf("socket path %q: invalid uid %d", path, uid)
	}
	if err := checkSocketPathSyntax(path); err != nil {
		return err
	}
	var base string
	for _, d := range SocketDirs(uid) {
		if strings.HasPrefix(path, d+"/") {
			base = d
			break
		}
	}
	if base == "" {
		return fmt.Errorf("socket path %q: must be under one of %s", path, strings.Join(SocketDirs(uid), ", "))
	}
	// base itself: a real directory, the user's, closed to others.
	fi, err := os.Lstat(base)
	if err != nil {
		return fmt.Errorf("socket path %q: %w", path, err)
	}
	if err := checkOwned(base, fi, uid, fs.ModeDir); err != nil {
		return fmt.Errorf("socket path %q: %w", path, err)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("socket path %q: directory %s is writable by group or others (mode %v)", path, base, fi.Mode().Perm())
	}
	// Every component below base, walked with Lstat so no symlink is followed.
	rel := strings.TrimPrefix(path, base+"/")
	parts := strings.Split(rel, "/")
	cur := base
	for i, p := range parts {
		cur = filepath.Join(cur, p)
		fi, err := os.Lstat(cur)
		if err != nil {
			return fmt.Errorf("socket path %q: %w", path, err)
		}
		want := fs.ModeDir
		if i == len(parts)-1 {
			want = fs.ModeSocket
		}
		if err := checkOwned(cur, fi, uid, want); err != nil {
			return fmt.Errorf("socket path %q: %w", path, err)
		}
	}
	return nil
}

func checkOwned(path string, fi fs.FileInfo, uid int, want fs.FileMode) error {
	if got := fi.Mode().Type(); got != want {
		return fmt.Errorf("%s is %s, want %s", path, typeName(got), typeName(want))
	}
	owner, ok := fileOwner(fi)
	if !ok {
		return fmt.Errorf("%s: cannot determine its owner on this platform", path)
	}
	if owner != uid {
		return fmt.Errorf("%s is owned by uid %d, not by the invoking user (uid %d)", path, owner, uid)
	}
	return nil
}

func typeName(m fs.FileMode) string {
	switch m {
	case 0:
		return "a regular file"
	case fs.ModeDir:
		return "a directory"
	case fs.ModeSymlink:
		return "a symbolic link"
	case fs.ModeSocket:
		return "a socket"
	default:
		return "a " + m.String() + " file"
	}
}
