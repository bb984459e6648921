#!/usr/bin/env bash
# cluster-down.sh stops the local cluster and removes everything cluster-up.sh
# and the workloads made: processes (by PID), containers, mounts, network
# namespaces, devices, iptables chains, nftables tables, cgroups and state.
# Laptop namespaces are removed too. Safe to run twice, or with nothing up.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

"$here/laptop.sh" down-all 2>/dev/null || true

for c in kube-proxy kubelet kube-scheduler kube-controller-manager kube-apiserver; do stop_pid "$c"; done

# Containers: kill every task of the cluster's containerd, then remove them.
if [ -S "$CONTAINERD_SOCK" ]; then
  for id in $(ctr tasks ls -q 2>/dev/null); do ctr tasks kill -s KILL "$id" >/dev/null 2>&1; done
  sleep 1
  for id in $(ctr tasks ls -q 2>/dev/null); do ctr tasks delete -f "$id" >/dev/null 2>&1; done
  for id in $(ctr containers ls -q 2>/dev/null); do ctr containers rm "$id" >/dev/null 2>&1; done
fi
stop_pid containerd
stop_pid etcd
stop_pid registry-open
stop_pid registry-auth
pkill -f "containerd-shim-runc-v2 -namespace k8s.io -address $CONTAINERD_SOCK" 2>/dev/null

# Pod network namespaces: CRI names them cni-<uuid>. Only this cluster's CRI
# runs here, so every one of them is ours.
for ns in /run/netns/cni-*; do
  [ -e "$ns" ] || continue
  ip netns delete "$(basename "$ns")" 2>/dev/null || { umount -l "$ns" 2>/dev/null; rm -f "$ns"; }
done

# Mounts below our folders, deepest first.
for dir in "$STATE" "$RUN_DIR"; do
  awk -v d="$dir" '$2 == d || index($2, d "/") == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
done

for dev in "$CNI_BRIDGE" "$HOST_DEV"; do ip link del "$dev" 2>/dev/null; done
ip route del blackhole "$POD_CIDR" 2>/dev/null
ip route del "$SERVICE_CIDR" 2>/dev/null
rm -f /var/lib/cni/results/tele-kind-* 2>/dev/null

# iptables: the KUBE-* and CNI-* chains and the rules that jump to them, and
# nothing else of the host's rules.
for cmd in iptables ip6tables; do
  command -v "$cmd-save" >/dev/null || continue
  saved=$("$cmd-save" 2>/dev/null)
  if grep -qE 'KUBE-|CNI-' <<<"$saved"; then
    grep -vE 'KUBE-|CNI-' <<<"$saved" | "$cmd-restore"
  fi
done
nft delete table inet tele_kind_guard 2>/dev/null
for fam in ip ip6; do nft delete table "$fam" kube-proxy 2>/dev/null; done

# cgroups kubelet made (cgroupfs driver, v1 hierarchies and the v2 mount).
for root in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
  for cg in "$root"kubepods*; do
    [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
done

rm -rf "$STATE" "$RUN_DIR"
log "cluster down"
