#!/usr/bin/env bash
# laptop.sh makes the "laptops" of the e2e tests: network namespaces joined to
# the host by a veth pair, with one route, to the API server's address, and no
# default route. The host's guard (cluster-up.sh) drops everything else a
# laptop sends, so a laptop reaches the cluster only through kubectl-tele.
#
#   laptop.sh up N        make laptop tele-lapN (N in 1..240: 60 for each E2E_SLOT)
#   laptop.sh down N      remove it
#   laptop.sh down-all    remove every laptop
#   laptop.sh exec N CMD  run CMD inside it (with its own /etc/resolv.conf)
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

name() { echo "tele-lap$1"; }
check() { [[ $1 =~ ^[0-9]+$ ]] && (( $1 >= 1 && $1 <= 240 )) || die "laptop number must be 1..240, got '$1'"; }

up() {
  check "$1"
  local ns; ns=$(name "$1")
  local host_ip="10.202.$1.1" lap_ip="10.202.$1.2"
  ip netns list | grep -qw "$ns" && down "$1"
  ip netns add "$ns"
  ip link add "$ns" type veth peer name eth0 netns "$ns"
  ip addr add "$host_ip/30" dev "$ns"
  ip link set "$ns" up
  ip -n "$ns" addr add "$lap_ip/30" dev eth0
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route add "$NODE_IP/32" via "$host_ip"
  # ip netns exec bind-mounts this file over /etc/resolv.conf. Nothing listens
  # on the laptop's loopback, so before connect every lookup fails at once.
  mkdir -p "/etc/netns/$ns"
  printf '# laptop %s: no resolver until kubectl tele connect\nnameserver 127.0.0.1\n' "$ns" >"/etc/netns/$ns/resolv.conf"
  echo "$ns"
}

down() {
  check "$1"
  local ns; ns=$(name "$1")
  if [ -e "/run/netns/$ns" ]; then
    # Processes left in the namespace (a daemon of a failed test) go with it.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns delete "$ns"
  fi
  ip link del "$ns" 2>/dev/null || true
  rm -rf "/etc/netns/$ns"
}

case ${1:-} in
  up) up "${2:-}" ;;
  down) down "${2:-}" ;;
  down-all)
    for ns in /run/netns/tele-lap*; do [ -e "$ns" ] && down "${ns##*/tele-lap}"; done; true ;;
  exec) n=${2:-}; check "$n"; shift 2; exec ip netns exec "$(name "$n")" "$@" ;;
  *) die "usage: laptop.sh up|down|exec N ... | down-all" ;;
esac
