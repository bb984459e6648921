package device

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// The ioctl arguments darwin's ifconfig passes to give an interface its
// address, built as bytes so that their layout is tested on Linux;
// device_darwin.go hands them to the kernel. Integers are in host order
// (binary.NativeEndian: darwin runs on amd64 and arm64, both little-endian);
// addresses and ports in network order, as in any sockaddr.
//
// Layouts, from darwin's <net/if.h>, <netinet/in.h> and <netinet6/in6_var.h>:
//
//	struct ifreq       { char name[16]; union { short flags; ... } }      32 bytes
//	struct ifaliasreq  { char name[16]; sockaddr_in addr, dst, mask }     64 bytes (SIOCAIFADDR)
//	struct in6_aliasreq{ char name[16]; sockaddr_in6 addr, dst, mask;
//	                     int flags; in6_addrlifetime lifetime }          128 bytes (SIOCAIFADDR_IN6)
//	struct in6_addrlifetime { time_t expire, preferred; u_int32_t vltime, pltime }
const (
	ifNameSize       = 16 // IFNAMSIZ
	sizeofIfreq      = 32
	sizeofIfAliasReq = 64
	sizeofIn6Alias   = 128
	sizeofSockaddr4  = 16
	sizeofSockaddr6  = 28

	// darwinIn6IffNodad is IN6_IFF_NODAD: like IFA_F_NODAD on Linux, skip
	// duplicate address detection on a point-to-point device of our own.
	darwinIn6IffNodad = 0x20
	// darwinND6InfiniteLifetime is ND6_INFINITE_LIFETIME: the address never
	// expires (ifconfig's default; a zero lifetime would expire it at once).
	darwinND6InfiniteLifetime = 0xffffffff
	// darwinSIOCAIFADDRIn6Value is SIOCAIFADDR_IN6, _IOW('i', 26, struct
	// in6_aliasreq), which golang.org/x/sys/unix does not define.
	darwinSIOCAIFADDRIn6Value = 0x8080691a
	// darwinIffUp is IFF_UP.
	darwinIffUp = 0x1
)

func putIfName(b []byte, name string) error {
	// The name and its NUL must fit IFNAMSIZ.
	if name == "" || len(name) >= ifNameSize {
		return fmt.Errorf("interface name %q: must be 1 to %d bytes", name, ifNameSize-1)
	}
	copy(b[:ifNameSize], name)
	return nil
}

func putSockaddr4(b []byte, a netip.Addr) {
	b[0] = sizeofSockaddr4
	b[1] = darwinAFInet
	a4 := a.As4()
	copy(b[4:8], a4[:]) // after sin_port
}

func putSockaddr6(b []byte, a netip.Addr) {
	b[0] = sizeofSockaddr6
	b[1] = darwinAFInet6
	a16 := a.As16()
	copy(b[8:24], a16[:]) // after sin6_port and sin6_flowinfo
}

// ifAliasReq4 is the SIOCAIFADDR argument that gives the utun ifName the
// IPv4 address addr. A utun is point-to-point: the destination is our own
// address too, with a /32 mask, as `ifconfig utunN inet A A netmask
// 255.255.255.255` sets it.
func ifAliasReq4(ifName string, addr netip.Addr) ([sizeofIfAliasReq]byte, error) {
	var b [sizeofIfAliasReq]byte
	if !addr.Is4() {
		return b, fmt.Errorf("SIOCAIFADDR: %s is not an IPv4 address", addr)
	}
	if err := putIfName(b[:], ifName); err != nil {
		return b, err
	}
	putSockaddr4(b[16:], addr)
	putSockaddr4(b[32:], addr)
	putSockaddr4(b[48:], netip.AddrFrom4([4]byte{255, 255, 255, 255}))
	return b, nil
}

// in6AliasReq is the SIOCAIFADDR_IN6 argument that gives ifName the IPv6
// address addr/128, with no duplicate address detection and no expiry
// (`ifconfig utunN inet6 A prefixlen 128`).
func in6AliasReq(ifName string, addr netip.Addr) ([sizeofIn6Alias]byte, error) {
	var b [sizeofIn6Alias]byte
	if !addr.Is6() || addr.Is4In6() || addr.Zone() != "" {
		return b, fmt.Errorf("SIOCAIFADDR_IN6: %s is not a plain IPv6 address", addr)
	}
	if err := putIfName(b[:], ifName); err != nil {
		return b, err
	}
	putSockaddr6(b[16:], addr)
	// ifra_dstaddr stays empty (sin6_len 0): the kernel ignores it for a /128.
	var ones [16]byte
	for i := range ones {
		ones[i] = 0xff
	}
	putSockaddr6(b[16+2*sizeofSockaddr6:], netip.AddrFrom16(ones))
	off := 16 + 3*sizeofSockaddr6 // 100
	binary.NativeEndian.PutUint32(b[off:], darwinIn6IffNodad)
	// in6_addrlifetime starts 8-aligned after the int: expire and preferred
	// (time_t, 0 = none) then vltime and pltime.
	lt := off + 4 // 104
	binary.NativeEndian.PutUint32(b[lt+16:], darwinND6InfiniteLifetime)
	binary.NativeEndian.PutUint32(b[lt+20:], darwinND6InfiniteLifetime)
	return b, nil
}

// ifreqFlags is a struct ifreq for SIOCGIFFLAGS/SIOCSIFFLAGS.
func ifreqFlags(ifName string, flags uint16) ([sizeofIfreq]byte, error) {
	var b [sizeofIfreq]byte
	if err := putIfName(b[:], ifName); err != nil {
		return b, err
	}
	binary.NativeEndian.PutUint16(b[16:], flags)
	return b, nil
}

// ifreqFlagsOf reads the flags back from a struct ifreq.
func ifreqFlagsOf(b [sizeofIfreq]byte) uint16 { return binary.NativeEndian.Uint16(b[16:]) }
