package plugin

import "errors"

// errNativeWindows is what connect says on Windows. The packages build for
// windows, but no helper there creates a wintun adapter or hands it to the
// daemon (Windows has no SCM_RIGHTS), so connect would otherwise fail deep
// inside the helper with "unsupported operation".
var errNativeWindows = errors.New("native Windows is not supported; run kubectl tele inside WSL2 (the Linux build)")

// checkPlatform refuses to connect on an OS where the helper cannot set up
// the device: today native Windows only.
func checkPlatform(goos string) error {
	if goos == "windows" {
		return errNativeWindows
	}
	return nil
}
