//go:build !unix

package plugin

// syscallONofollow is 0 where open has no O_NOFOLLOW; the helper runs only on
// Linux (see pkg/net/helper), so nothing here opens its log as root.
const syscallONofollow = 0
