#!/usr/bin/env bash
# install-deps.sh installs, from Debian, what the local cluster runs that is
# not built from Go: containerd, runc, CNI plugins, etcd, iptables, nftables,
# sudo (the e2e laptops run kubectl-tele as an ordinary user), htpasswd (the
# private registry's login), qemu-user (make test runs the arm64 binary),
# tcpdump (an e2e test captures the agents' link on the CNI bridge), and
# dbus with systemd-resolved unpacked (the e2e laptops with a real resolver).
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
need=()
for b in containerd:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins etcd:etcd-server \
  iptables:iptables conntrack:conntrack nft:nftables jq:jq openssl:openssl ip:iproute2 curl:curl sudo:sudo \
  htpasswd:apache2-utils qemu-aarch64-static:qemu-user-static tcpdump:tcpdump; do
  bin=${b%%:*} pkg=${b#*:}
  command -v "$bin" >/dev/null 2>&1 || [ -x "$bin" ] || need+=("$pkg")
done
export DEBIAN_FRONTEND=noninteractive
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]} from Debian"
  timeout 600 apt-get update -qq
  timeout 900 apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# The e2e laptops with systemd-resolved (laptop.sh up-resolved) run
# systemd-resolved and nss-resolve from their Debian packages unpacked in
# RESOLVED_DIR, never installed: installing systemd-resolved turns the
# host's /etc/resolv.conf into a symlink to a stub that nothing serves here
# (PID 1 is not systemd), which breaks the machine's DNS. They must be the
# version of the installed libsystemd-shared, which they link against.
command -v dbus-daemon >/dev/null || { timeout 600 apt-get update -qq; timeout 900 apt-get install -y -qq --no-install-recommends dbus >/dev/null; }
if [ ! -x "$RESOLVED_DIR/lib/systemd/systemd-resolved" ]; then
  v=$(dpkg-query -W -f '${Version}' libsystemd-shared)
  log "unpacking systemd-resolved and libnss-resolve $v into $RESOLVED_DIR"
  tmp=$(mktemp -d)
  (cd "$tmp" && timeout 300 apt-get download -qq "systemd-resolved=$v" "libnss-resolve=$v") ||
    { timeout 600 apt-get update -qq; (cd "$tmp" && timeout 300 apt-get download -qq "systemd-resolved=$v" "libnss-resolve=$v"); }
  mkdir -p "$RESOLVED_DIR.tmp"
  for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$RESOLVED_DIR.tmp"; done
  rm -rf "$tmp" "$RESOLVED_DIR"
  mv "$RESOLVED_DIR.tmp" "$RESOLVED_DIR"
fi
