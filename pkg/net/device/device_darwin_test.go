package device

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// The constants the Linux-tested plan uses are darwin's.
func TestDarwinConstants(t *testing.T) {
	for _, c := range []struct {
		name      string
		ours, sys int
	}{
		{"RTM_ADD", darwinRTMAdd, unix.RTM_ADD},
		{"RTM_DELETE", darwinRTMDelete, unix.RTM_DELETE},
		{"RTF_UP", darwinRTFUp, unix.RTF_UP},
		{"RTF_GATEWAY", darwinRTFGateway, unix.RTF_GATEWAY},
		{"RTF_HOST", darwinRTFHost, unix.RTF_HOST},
		{"RTF_LLINFO", darwinRTFLLInfo, unix.RTF_LLINFO},
		{"RTF_STATIC", darwinRTFStatic, unix.RTF_STATIC},
		{"RTF_WASCLONED", darwinRTFWasCloned, unix.RTF_WASCLONED},
		{"RTF_IFSCOPE", darwinRTFIfscope, unix.RTF_IFSCOPE},
		{"AF_INET", darwinAFInet, unix.AF_INET},
		{"AF_INET6", darwinAFInet6, unix.AF_INET6},
		{"IFF_UP", darwinIffUp, unix.IFF_UP},
		{"SIOCAIFADDR", int(iow('i', 26, sizeofIfAliasReq)), unix.SIOCAIFADDR},
		{"SIOCSIFFLAGS", int(iow('i', 16, sizeofIfreq)), unix.SIOCSIFFLAGS},
		{"sizeof(sockaddr_in)", sizeofSockaddr4, unix.SizeofSockaddrInet4},
		{"sizeof(sockaddr_in6)", sizeofSockaddr6, unix.SizeofSockaddrInet6},
	} {
		if c.ours != c.sys {
			t.Errorf("%s = %#x here, %#x in x/sys/unix", c.name, c.ours, c.sys)
		}
	}
}

// rtMsghdrSize is sizeof(struct rt_msghdr) on darwin.
const rtMsghdrSize = 92

// TestRouteMessageBytes checks the routing-socket message for one planned
// route byte by byte: the rt_msghdr, then RTA_DST, RTA_GATEWAY (the utun's
// sockaddr_dl) and RTA_NETMASK, each padded to 4 bytes, as route(8) sends
// `route -n add -net 10.96.0.0/12 -interface utun4`.
func TestRouteMessageBytes(t *testing.T) {
	ops, err := planRoutes(darwinRTMAdd, 17, "utun4", []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := routeMessage(ops[0]).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ne := binary.NativeEndian
	if int(ne.Uint16(b[0:])) != len(b) {
		t.Errorf("rtm_msglen %d, message is %d bytes", ne.Uint16(b[0:]), len(b))
	}
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"rtm_version", uint64(b[2]), unix.RTM_VERSION},
		{"rtm_type", uint64(b[3]), unix.RTM_ADD},
		{"rtm_index", uint64(ne.Uint16(b[4:])), 17},
		{"rtm_flags", uint64(ne.Uint32(b[8:])), unix.RTF_UP | unix.RTF_STATIC},
		{"rtm_addrs", uint64(ne.Uint32(b[12:])), unix.RTA_DST | unix.RTA_GATEWAY | unix.RTA_NETMASK},
		{"rtm_pid", uint64(ne.Uint32(b[16:])), uint64(os.Getpid())},
		{"rtm_seq", uint64(ne.Uint32(b[20:])), 1},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
	var want []byte
	want = append(want, 16, unix.AF_INET, 0, 0, 10, 96, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)  // dst
	dl := []byte{13, unix.AF_LINK, 0, 0, 0, 5, 0, 0, 'u', 't', 'u', 'n', '4', 0, 0, 0} // gateway, padded to 16
	ne.PutUint16(dl[2:], 17)                                                           // sdl_index
	want = append(want, dl...)
	want = append(want, 16, unix.AF_INET, 0, 0, 255, 240, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) // netmask
	body := b[rtMsghdrSize:]
	if !bytes.Equal(body[:len(want)], want) {
		t.Errorf("addresses =\n% x\nwant\n% x", body[:len(want)], want)
	}
	if rest := body[len(want):]; !bytes.Equal(rest, make([]byte, len(rest))) {
		t.Errorf("bytes after the addresses are not zero padding")
	}
}

// A host route carries no RTA_NETMASK; a v6 route's addresses are
// sockaddr_in6.
func TestRouteMessageHostV6(t *testing.T) {
	ops, err := planRoutes(darwinRTMAdd, 9, "utun0", []netip.Prefix{netip.MustParsePrefix("fd00::5/128")})
	if err != nil {
		t.Fatal(err)
	}
	b, err := routeMessage(ops[0]).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ne := binary.NativeEndian
	if got := ne.Uint32(b[12:]); got != unix.RTA_DST|unix.RTA_GATEWAY {
		t.Errorf("rtm_addrs = %#x, want RTA_DST|RTA_GATEWAY", got)
	}
	if got := ne.Uint32(b[8:]); got != unix.RTF_UP|unix.RTF_STATIC|unix.RTF_HOST {
		t.Errorf("rtm_flags = %#x", got)
	}
	dst := b[rtMsghdrSize : rtMsghdrSize+28]
	if dst[0] != 28 || dst[1] != unix.AF_INET6 || netip.AddrFrom16([16]byte(dst[8:24])) != netip.MustParseAddr("fd00::5") {
		t.Errorf("RTA_DST = % x", dst)
	}
}
