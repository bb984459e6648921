package device

import (
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
)

// iow is darwin's _IOW(g, n, size) from <sys/ioccom.h>.
func iow(g byte, n, size uint32) uint32 {
	const iocIn, iocParmMask = 0x80000000, 0x1fff
	return iocIn | (size&iocParmMask)<<16 | uint32(g)<<8 | n
}

// The struct sizes are what the ioctl numbers encode: a wrong size is an
// ENOTTY/EINVAL on a Mac, so check it here.
func TestIoctlSizes(t *testing.T) {
	if got := iow('i', 26, sizeofIfAliasReq); got != 0x8040691a { // SIOCAIFADDR
		t.Errorf("SIOCAIFADDR for %d bytes = %#x, want 0x8040691a", sizeofIfAliasReq, got)
	}
	if got := iow('i', 26, sizeofIn6Alias); got != darwinSIOCAIFADDRIn6Value {
		t.Errorf("SIOCAIFADDR_IN6 for %d bytes = %#x, want %#x", sizeofIn6Alias, got, darwinSIOCAIFADDRIn6Value)
	}
	if got := iow('i', 16, sizeofIfreq); got != 0x80206910 { // SIOCSIFFLAGS
		t.Errorf("SIOCSIFFLAGS for %d bytes = %#x", sizeofIfreq, got)
	}
}

func TestIfAliasReq4(t *testing.T) {
	b, err := ifAliasReq4("utun4", addr("198.18.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	want := "7574756e340000000000000000000000" + // "utun4", NUL-padded to IFNAMSIZ
		"1002" + "0000" + "c6120001" + "0000000000000000" + // addr: len 16, AF_INET, port 0, 198.18.0.1
		"1002" + "0000" + "c6120001" + "0000000000000000" + // dst: ourselves (point-to-point)
		"1002" + "0000" + "ffffffff" + "0000000000000000" // mask /32
	if got := hex.EncodeToString(b[:]); got != want {
		t.Errorf("ifaliasreq =\n%s\nwant\n%s", got, want)
	}
}

func TestIn6AliasReq(t *testing.T) {
	b, err := in6AliasReq("utun10", addr("fd00:1::1"))
	if err != nil {
		t.Fatal(err)
	}
	if name := strings.TrimRight(string(b[:16]), "\x00"); name != "utun10" {
		t.Errorf("name %q", name)
	}
	wantAddr := "1c1e" + "0000" + "00000000" + "fd000001000000000000000000000001" + "00000000"
	if got := hex.EncodeToString(b[16:44]); got != wantAddr {
		t.Errorf("ifra_addr = %s, want %s", got, wantAddr)
	}
	if got := hex.EncodeToString(b[44:72]); got != strings.Repeat("0", 56) {
		t.Errorf("ifra_dstaddr = %s, want empty", got)
	}
	wantMask := "1c1e" + "0000" + "00000000" + strings.Repeat("ff", 16) + "00000000"
	if got := hex.EncodeToString(b[72:100]); got != wantMask {
		t.Errorf("ifra_prefixmask = %s, want %s", got, wantMask)
	}
	ne := binary.NativeEndian
	if f := ne.Uint32(b[100:]); f != darwinIn6IffNodad {
		t.Errorf("ifra_flags = %#x, want IN6_IFF_NODAD", f)
	}
	if e, p := ne.Uint64(b[104:]), ne.Uint64(b[112:]); e != 0 || p != 0 {
		t.Errorf("expire, preferred = %d, %d; want 0, 0", e, p)
	}
	if v, p := ne.Uint32(b[120:]), ne.Uint32(b[124:]); v != darwinND6InfiniteLifetime || p != darwinND6InfiniteLifetime {
		t.Errorf("vltime, pltime = %#x, %#x; want infinite", v, p)
	}
}

func TestIfreqErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"v6 to SIOCAIFADDR", second(ifAliasReq4("utun4", addr("fd00::1"))), "not an IPv4 address"},
		{"v4 to SIOCAIFADDR_IN6", second(in6AliasReq("utun4", addr("10.0.0.1"))), "not a plain IPv6"},
		{"mapped to SIOCAIFADDR_IN6", second(in6AliasReq("utun4", addr("::ffff:10.0.0.1"))), "not a plain IPv6"},
		{"long name", second(ifreqFlags("utun0123456789012", 1)), "1 to 15 bytes"},
		{"empty name", second(ifAliasReq4("", addr("10.0.0.1"))), "1 to 15 bytes"},
	}
	for _, tt := range tests {
		if tt.err == nil || !strings.Contains(tt.err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, tt.err, tt.want)
		}
	}
}

func second[T any](_ T, err error) error { return err }

func TestIfreqFlags(t *testing.T) {
	b, err := ifreqFlags("utun4", 0x8051)
	if err != nil {
		t.Fatal(err)
	}
	if got := ifreqFlagsOf(b); got != 0x8051 {
		t.Errorf("flags round trip = %#x", got)
	}
	if b, _ := ifreqFlags("utun4", ifreqFlagsOf(b)|darwinIffUp); ifreqFlagsOf(b) != 0x8051 {
		t.Errorf("IFF_UP on an up interface changed the flags to %#x", ifreqFlagsOf(b))
	}
}
