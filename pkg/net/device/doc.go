// Package device sets up the TUN device that carries a session's cluster
// traffic, on behalf of the unprivileged daemon.
//
// The daemon runs as the user. A short-lived root helper (the same binary run
// through sudo) parses and validates a [Request], creates the device with
// [Create] (address, MTU, link up, one route per cluster CIDR), hands the
// device's file descriptor to the daemon with [SendFile] and exits. The daemon
// takes it with [ReceiveFile] and wraps it with [Open] (or, when it has
// CAP_NET_ADMIN, tun.CreateTUNFromFile). The device is not persistent: when
// the last descriptor is closed the kernel deletes it together with its
// address and routes, so a crashed daemon leaves nothing behind unless some
// other process still holds the descriptor; [Remove] deletes such a leftover.
//
// # MTU, and no virtio-net headers
//
// The device is created with IFF_TUN|IFF_NO_PI and an MTU near the 64 KiB
// maximum. It carries only traffic between the laptop's kernel and the
// daemon's userspace stack, never a real link, so a large MTU is free, and it
// makes every TCP segment up to 64 KiB: the gVisor stack then handles 45
// times fewer packets per byte than at 1,420. At that size the kernel's
// segmentation offloads (IFF_VNET_HDR, as wireguard-go's tun.CreateTUN sets)
// gain nothing, and they cost the daemon a batch of 128 read and 128 write
// buffers of 64 KiB each (16 MiB of its RSS after a bulk transfer). Without
// IFF_VNET_HDR, wireguard-go's CreateUnmonitoredTUNFromFD reads the flags
// back with TUNGETIFF and uses one packet per read and write.
//
// # darwin
//
// On darwin [Create] makes a utun with wireguard-go's tun.CreateTUN (the
// kernel picks utunN; s.Name only names the session), which also sets the
// MTU; gives it the address with SIOCAIFADDR (SIOCAIFADDR_IN6), sets IFF_UP,
// and adds one interface route per cluster CIDR with RTM_ADD messages on the
// routing socket (golang.org/x/net/route), as ifconfig and route(8) do. The
// decisions (route plan, which routing-table entries count as the host's
// routes, the ioctl structures' bytes) are shared code tested on Linux;
// device_darwin.go only makes the calls. [CheckPeer] uses LOCAL_PEERCRED,
// and descriptors pass with SCM_RIGHTS as on Linux. [Open] wraps the
// received file with tun.CreateTUNFromFile, which on darwin needs no
// privilege when given no MTU.
//
// On windows the package compiles, and the functions that need a kernel
// return [errors.ErrUnsupported] (connect refuses native Windows before
// that).
package device
