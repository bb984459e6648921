package namecheck

import (
	"net/netip"
	"slices"
	"strings"
)

// parseGetent reads `getent ahosts` output: an address first on each line.
func parseGetent(out []byte) []netip.Addr {
	var addrs []netip.Addr
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if a, err := netip.ParseAddr(f[0]); err == nil && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	return addrs
}
