//go:build !unix

package helper

import "io/fs"

// inode is not available here: there are no network namespaces to tell apart,
// and StateDir fails before, on /proc/self/ns/net.
func inode(fs.FileInfo) (uint64, bool) { return 0, false }
