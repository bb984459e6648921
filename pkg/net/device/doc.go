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
// Only Linux creates devices. On darwin and windows the package compiles, and
// [DarwinCommands] and [WindowsCommands] give the ifconfig/route and netsh
// command lines for the same [Spec]; the functions that need a kernel return
// [errors.ErrUnsupported].
package device
