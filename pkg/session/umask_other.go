//go:build !unix

package session

// umask does nothing where there is no umask: on Windows a Unix socket file
// gets the ACL of its directory, which is the user's own runtime directory.
func umask(m int) int { return m }
