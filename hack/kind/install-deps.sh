#!/usr/bin/env bash
# install-deps.sh installs, from Debian, what the local cluster runs that is
# not built from Go: containerd, runc, CNI plugins, etcd, iptables, nftables,
# sudo (the e2e laptops run kubectl-tele as an ordinary user), htpasswd (the
# private registry's login), qemu-user (make test runs the arm64 binary) and
# tcpdump (an e2e test captures the agents' link on the CNI bridge).
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
need=()
for b in containerd:containerd runc:runc /usr/lib/cni/bridge:containernetworking-plugins etcd:etcd-server \
  iptables:iptables conntrack:conntrack nft:nftables jq:jq openssl:openssl ip:iproute2 curl:curl sudo:sudo \
  htpasswd:apache2-utils qemu-aarch64-static:qemu-user-static tcpdump:tcpdump; do
  bin=${b%%:*} pkg=${b#*:}
  command -v "$bin" >/dev/null 2>&1 || [ -x "$bin" ] || need+=("$pkg")
done
[ ${#need[@]} -eq 0 ] && exit 0
log "installing ${need[*]} from Debian"
export DEBIAN_FRONTEND=noninteractive
timeout 600 apt-get update -qq
timeout 900 apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
