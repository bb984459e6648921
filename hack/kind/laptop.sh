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
#   laptop.sh up-resolved N stub|nss
#                         make laptop N with systemd-resolved as its resolver,
#                         as an Ubuntu (stub: glibc's DNS to 127.0.0.53) or a
#                         Fedora desktop (nss: nsswitch's nss-resolve); prints
#                         the PID of the process holding its namespaces, which
#                         commands enter with nsenter -t PID -m -n
#
# A laptop with systemd-resolved is a network namespace as above, entered
# with a private mount namespace (unshare -m) in which /etc is an overlay
# over the host's (its upper layer holds only resolv.conf -> the stub's file,
# resolved.conf, resolved's D-Bus policy and, for nss, nsswitch.conf) and
# /run a tmpfs (the laptop's own system bus and /run/systemd/resolve), so
# nothing of the host changes. In it run dbus-daemon --system, then
# systemd-resolved and nss-resolve as unpacked by install-deps.sh (never
# installed), and dnsrec ($DNSREC), the laptop's own upstream DNS on
# 127.0.0.2: it answers the laptop's own name printer.lan (192.0.2.80) and
# NXDOMAIN otherwise, and logs every query it gets to STATE/upstream.log,
# which makes it the tests' leak counter. resolved sends nothing elsewhere
# (no fallback servers, no LLMNR or mDNS). A bind mount of
# /etc/netns/NAME/resolv.conf would not do: resolved replaces
# stub-resolv.conf by rename, so a bound copy keeps a stale search line.
# STATE is /tmp/tele-laptop-NAME (kept as STATE.last after down).
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
  local st; st=$(state_of "$1")
  if [ -d "$st" ]; then
    # Kept for a failed test's diagnosis until the laptop is made again.
    rm -rf "$st.last"; mv "$st" "$st.last"
  fi
}

state_of() { echo "/tmp/tele-laptop-$(name "$1")"; }

up_resolved() {
  check "$1"
  local style=${2:-} st; st=$(state_of "$1")
  [[ $style == stub || $style == nss ]] || die "up-resolved: style must be stub or nss, got '$style'"
  [ -x "$RESOLVED_DIR/lib/systemd/systemd-resolved" ] || die "no systemd-resolved in $RESOLVED_DIR: run hack/kind/install-deps.sh"
  [ -x "${DNSREC:-}" ] || die "set DNSREC to the dnsrec binary (go build ./test/e2e/dnsrec)"
  # resolved drops to this user by itself.
  getent passwd systemd-resolve >/dev/null || useradd --system --no-create-home --shell /usr/sbin/nologin systemd-resolve
  up "$1" >/dev/null
  rm -rf "$st"
  mkdir -p "$st/upper/systemd" "$st/upper/dbus-1/system.d" "$st/work"
  ln -s ../run/systemd/resolve/stub-resolv.conf "$st/upper/resolv.conf"
  cp "$RESOLVED_DIR/usr/share/dbus-1/system.d/org.freedesktop.resolve1.conf" "$st/upper/dbus-1/system.d/"
  printf '[Resolve]\nDNS=127.0.0.2\nFallbackDNS=\nDomains=\nLLMNR=no\nMulticastDNS=no\nDNSSEC=no\nDNSOverTLS=no\nDNSStubListener=yes\n' \
    >"$st/upper/systemd/resolved.conf"
  if [ "$style" = nss ]; then
    # As Fedora has it; the module is found through a lib overlay inside.
    sed 's/^hosts:.*/hosts:          files resolve [!UNAVAIL=return] dns/' /etc/nsswitch.conf >"$st/upper/nsswitch.conf"
  fi
  setsid ip netns exec "$(name "$1")" unshare -m --propagation private "$0" _inside "$1" "$style" </dev/null >"$st/inside.log" 2>&1 &
  for _ in $(seq 100); do [ -s "$st/holder.pid" ] && break; sleep 0.1; done
  [ -s "$st/holder.pid" ] || { cat "$st/inside.log" >&2; die "laptop $1 did not start"; }
  local h; h=$(cat "$st/holder.pid")
  for _ in $(seq 100); do
    nsenter -t "$h" -m -n -- test -s /run/systemd/resolve/stub-resolv.conf && break
    sleep 0.1
  done
  nsenter -t "$h" -m -n -- test -s /run/systemd/resolve/stub-resolv.conf ||
    { tail -30 "$st/resolved.log" >&2; die "systemd-resolved did not start in laptop $1"; }
  echo "$h"
}

# _inside runs in the laptop's network namespace and a private mount
# namespace, starts its services, then holds both namespaces.
_inside() {
  local st; st=$(state_of "$1")
  mount -t overlay overlay -o "lowerdir=/etc,upperdir=$st/upper,workdir=$st/work" /etc
  mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
  mkdir -p /run/dbus /run/systemd # resolved makes /run/systemd/resolve, not its parent
  if [ "$2" = nss ]; then
    local lib; lib=$(dirname "$(find "$RESOLVED_DIR" -name libnss_resolve.so.2 -type f | head -1)")
    lib=/${lib#"$RESOLVED_DIR"/}
    mkdir -p "$st/libupper" "$st/libwork"
    cp "$RESOLVED_DIR$lib/libnss_resolve.so.2" "$st/libupper/"
    mount -t overlay overlay -o "lowerdir=$lib,upperdir=$st/libupper,workdir=$st/libwork" "$lib"
  fi
  "$DNSREC" -addr 127.0.0.2:53 -log "$st/upstream.log" -answer printer.lan=192.0.2.80 >"$st/dnsrec.log" 2>&1 &
  dbus-daemon --system --nofork --nosyslog >"$st/dbus.log" 2>&1 &
  for _ in $(seq 50); do [ -S /run/dbus/system_bus_socket ] && break; sleep 0.1; done
  # Without NOTIFY_SOCKET its sd_notify calls do nothing: no systemd needed.
  env -u NOTIFY_SOCKET -u WATCHDOG_USEC SYSTEMD_LOG_LEVEL=debug SYSTEMD_LOG_TARGET=console SYSTEMD_LOG_COLOR=0 \
    "$RESOLVED_DIR/lib/systemd/systemd-resolved" >"$st/resolved.log" 2>&1 &
  echo $$ >"$st/holder.pid"
  exec sleep infinity
}

case ${1:-} in
  up) up "${2:-}" ;;
  up-resolved) up_resolved "${2:-}" "${3:-}" ;;
  _inside) _inside "$2" "$3" ;;
  down) down "${2:-}" ;;
  down-all)
    for ns in /run/netns/tele-lap*; do [ -e "$ns" ] && down "${ns##*/tele-lap}"; done; true ;;
  exec) n=${2:-}; check "$n"; shift 2; exec ip netns exec "$(name "$n")" "$@" ;;
  *) die "usage: laptop.sh up|down|exec N ... | up-resolved N stub|nss | down-all" ;;
esac
