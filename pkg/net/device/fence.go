package device

// A fence keeps lookups from waiting on the nameserver of a session that
// died. The resolver configuration names our nameserver, an address inside
// the session's routes, first (see resolver.RenderResolvConf). When the
// daemon dies its TUN device goes, and its routes with it, but the
// resolver configuration stays until quit or status repairs it. Packets to
// the nameserver would then take the laptop's default route, where nothing
// answers them, and the C library would wait its timeout on every query
// before asking the laptop's own nameservers listed after ours. The fence
// is a route for exactly the nameserver's address that refuses at once
// (unreachable), with the worst metric, under one for the same address
// through the device: while the device lives its route wins, and once it is
// gone the kernel refuses the packet, so the C library moves on to the next
// nameserver with no wait. The helper sets it up with the device and
// removes it with the resolver configuration ("down"); status lists it
// among what a dead session left.
//
// Only Linux needs one: macOS sends only the cluster's domains to our
// nameserver (/etc/resolver files), and Windows is not supported natively.
