package device

import "io/fs"

// fileOwner has no uid to report on Windows, so socket paths never validate
// there; the Windows helper does not pass descriptors over Unix sockets.
func fileOwner(fs.FileInfo) (int, bool) { return 0, false }
