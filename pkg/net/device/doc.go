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
// # Virtio-net headers and offloads
//
// The device is created with IFF_TUN|IFF_NO_PI|IFF_VNET_HDR, the flags
// wireguard-go's tun.CreateTUN uses, so every read and write on the raw
// descriptor carries a 10-byte virtio_net_hdr. The root helper deliberately
// does not call TUNSETOFFLOAD: offloads (TSO, USO, checksum) decide whether
// the kernel hands over GSO super-packets, and only the process that reads the
// device knows whether it can split them. wireguard-go's CreateTUNFromFile and
// CreateUnmonitoredTUNFromFD read the flags back with TUNGETIFF and enable the
// offloads they support, so a receiver using either is consistent by
// construction. A receiver that reads the raw descriptor itself must strip the
// virtio header and must not enable offloads it cannot handle.
//
// Only Linux creates devices. On darwin and windows the package compiles, and
// [DarwinCommands] and [WindowsCommands] give the ifconfig/route and netsh
// command lines for the same [Spec]; the functions that need a kernel return
// [errors.ErrUnsupported].
package device
