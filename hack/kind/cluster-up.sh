#!/usr/bin/env bash
# cluster-up.sh starts a real single-node Kubernetes cluster on this machine
# from nothing: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# containerd + runc + CNI bridge, kubelet, kube-proxy and CoreDNS. It needs
# root. Everything it makes lives under $STATE, $RUN_DIR, two bridge devices
# and one nftables table; cluster-down.sh removes all of it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
t0=$(date +%s)

[ "$(id -u)" = 0 ] || die "cluster-up needs root (it starts kubelet and containerd)"
if [ -f "$STATE/pids/kube-apiserver.pid" ] && kill -0 "$(cat "$STATE/pids/kube-apiserver.pid")" 2>/dev/null; then
  log "cluster already running; KUBECONFIG=$KUBECONFIG_FILE"
  exit 0
fi

"$here/install-deps.sh"
"$here/build-k8s.sh"
"$here/build-coredns.sh"
"$here/build-registry.sh"
mkdir -p "$STATE" "$RUN_DIR"

# --- host network and the leak guard -----------------------------------------
# The guard comes first, before any component can send a packet for the
# cluster's CIDRs. Its own nftables table: a drop there is final whatever
# kube-proxy and CNI put into the iptables tables.
#  - service CIDR: a packet still addressed to it after kube-proxy's DNAT has
#    no Service behind it (or kube-proxy is down): rejected locally, dropped in
#    forwarding. The route for it points at a local bridge with no ports, so a
#    first route lookup never picks the default route.
#  - pod CIDR: reaches nothing but the CNI bridge; the rest is a blackhole route.
#  - pods reach nothing outside the machine; laptop namespaces reach only the
#    API server.
sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
ip link show "$HOST_DEV" >/dev/null 2>&1 || ip link add "$HOST_DEV" type bridge
ip addr replace "$NODE_IP/32" dev "$HOST_DEV"
ip link set "$HOST_DEV" up
ip route replace "$SERVICE_CIDR" dev "$HOST_DEV" src "$NODE_IP"
ip route replace blackhole "$POD_CIDR"
nft -f - <<NFT
table inet tele_kind_guard
delete table inet tele_kind_guard
table inet tele_kind_guard {
  chain output {
    type filter hook output priority filter + 10; policy accept;
    ip daddr $SERVICE_CIDR counter reject with icmp type net-unreachable comment "service-cidr-unassigned"
    ip daddr $POD_CIDR oifname != "$CNI_BRIDGE" counter drop comment "pod-cidr-off-bridge"
  }
  chain forward {
    type filter hook forward priority filter + 10; policy accept;
    ip daddr $SERVICE_CIDR counter drop comment "service-cidr-unassigned"
    ip daddr $POD_CIDR oifname != "$CNI_BRIDGE" counter drop comment "pod-cidr-off-bridge"
    ip saddr $POD_CIDR oifname != "$CNI_BRIDGE" counter drop comment "pod-egress"
    iifname "tele-lap*" counter drop comment "laptop-forward"
  }
  chain input {
    type filter hook input priority filter + 10; policy accept;
    iifname "tele-lap*" ct state established,related accept
    iifname "tele-lap*" ip daddr $NODE_IP tcp dport { $API_PORT, 16443-16499 } accept comment "laptop-to-apiserver"
    iifname "tele-lap*" counter drop comment "laptop-input"
  }
}
NFT

# --- containerd ----------------------------------------------------------------
# Make /run/netns a mount point the way iproute2 does, before CRI puts pod
# namespaces there: else the first `ip netns add` (a laptop) binds /run/netns
# over itself and hides the pod namespaces' mounts from cluster-down.
if ! mountpoint -q /run/netns 2>/dev/null; then
  ip netns add tele-kind-init && ip netns delete tele-kind-init
fi
"$here/pki.sh"
pki=$STATE/pki

# --- registries ------------------------------------------------------------------
"$here/registry.sh"

mkdir -p "$STATE/containerd" "$STATE/cni/net.d" "$STATE/cni/ipam"
# Registry hosts (containerd's certs.d layout): ours over TLS with the
# cluster's CA; every other registry resolves to a closed local port, so no
# pull leaves the machine and a missing image fails at once (ErrImagePull).
hosts=$STATE/containerd/certs.d
for r in "$REGISTRY" "$AUTH_REGISTRY"; do
  mkdir -p "$hosts/$r"
  cat >"$hosts/$r/hosts.toml" <<TOML
server = "https://$r"
[host."https://$r"]
  capabilities = ["pull", "resolve"]
  ca = "$pki/ca.crt"
TOML
done
mkdir -p "$hosts/_default"
cat >"$hosts/_default/hosts.toml" <<TOML
server = "http://127.0.0.1:1"
[host."http://127.0.0.1:1"]
  capabilities = ["pull", "resolve"]
TOML
cat >"$STATE/containerd/config.toml" <<TOML
version = 2
root = "$STATE/containerd/root"
state = "$RUN_DIR/containerd-state"
[grpc]
  address = "$CONTAINERD_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$hosts"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$here/runc-wrapper"
        SystemdCgroup = false
TOML
start containerd containerd --config "$STATE/containerd/config.toml"
wait_for containerd 30 ctr version || die "containerd did not start: $STATE/logs/containerd.log"
# The cluster's own images, pushed to the registry; the kubelet pulls them.
"$here/images.sh" pause coredns echo

# --- etcd and the control plane -------------------------------------------------
start etcd etcd --name tele --data-dir "$STATE/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "tele=http://127.0.0.1:$ETCD_PEER_PORT"
wait_for etcd 30 curl -fsS "http://127.0.0.1:$ETCD_CLIENT_PORT/health" || die "etcd did not start: $STATE/logs/etcd.log"

# Audit: the requests of ServiceAccounts (the control plane's, in
# kube-system, aside), of every verb, at Metadata level,
# and nothing else. The e2e tests count from it what a traffic manager asks
# of the API server (TestManagerNoPolling: no polling, no per-request reads).
cat >"$STATE/audit-policy.yaml" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  userGroups: ["system:serviceaccounts:kube-system"]
- level: Metadata
  userGroups: ["system:serviceaccounts"]
- level: None
POLICY
start_apiserver
wait_for kube-apiserver 90 kubectl get --raw /readyz || die "kube-apiserver not ready: $STATE/logs/kube-apiserver.log"
log "kube-apiserver ready at https://$NODE_IP:$API_PORT"

start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
  --kubeconfig="$STATE/controller-manager.kubeconfig" \
  --authentication-kubeconfig="$STATE/controller-manager.kubeconfig" --authorization-kubeconfig="$STATE/controller-manager.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false \
  --allocate-node-cidrs --cluster-cidr="$POD_CIDR" --node-cidr-mask-size=24 --service-cluster-ip-range="$SERVICE_CIDR" \
  --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" --use-service-account-credentials \
  --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" --profiling=false
start kube-scheduler "$K8S_BIN/kube-scheduler" \
  --kubeconfig="$STATE/scheduler.kubeconfig" \
  --authentication-kubeconfig="$STATE/scheduler.kubeconfig" --authorization-kubeconfig="$STATE/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 --leader-elect=false --profiling=false

# --- kubelet -------------------------------------------------------------------
mkdir -p "$STATE/kubelet"
# Pods get no upstream resolver: cluster DNS answers cluster names, nothing
# else, and no query for an outside name leaves the machine.
: >"$STATE/kubelet/resolv.conf"
cat >"$STATE/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$CONTAINERD_SOCK
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $pki/kubelet-server.crt
tlsPrivateKeyFile: $pki/kubelet-server.key
clusterDNS: [$DNS_SERVICE_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: $STATE/kubelet/resolv.conf
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
# Tests measure what they start, not image garbage collection: keep images.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%"}
YAML
start kubelet "$K8S_BIN/kubelet" --config="$STATE/kubelet/config.yaml" --kubeconfig="$STATE/kubelet.kubeconfig" \
  --root-dir="$STATE/kubelet/root" --cert-dir="$STATE/kubelet/pki" \
  --node-ip="$NODE_IP" --hostname-override="$NODE_NAME"
node_cidr() { kubectl get node "$NODE_NAME" -o 'jsonpath={.spec.podCIDR}' | grep -q .; }
wait_for "node $NODE_NAME to get a pod CIDR" 90 node_cidr || die "node did not register: $STATE/logs/kubelet.log"
cidr=$(kubectl get node "$NODE_NAME" -o 'jsonpath={.spec.podCIDR}')
cat >"$STATE/cni/net.d/10-tele-kind.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "tele-kind",
  "plugins": [
    {
      "type": "bridge", "bridge": "$CNI_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {"type": "host-local", "dataDir": "$STATE/cni/ipam", "ranges": [[{"subnet": "$cidr"}]], "routes": [{"dst": "0.0.0.0/0"}]}
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON

# --- kube-proxy ----------------------------------------------------------------
# After the node has its IP; conntrack sysctls are left as they are.
start kube-proxy "$K8S_BIN/kube-proxy" --kubeconfig="$STATE/kube-proxy.kubeconfig" \
  --hostname-override="$NODE_NAME" --cluster-cidr="$POD_CIDR" --proxy-mode=iptables \
  --nodeport-addresses=primary --metrics-bind-address=127.0.0.1:10249 --healthz-bind-address=127.0.0.1:10256 \
  --conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0
node_ready() { kubectl get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' | grep -qx True; }
wait_for "node Ready" 90 node_ready || die "node not Ready: $STATE/logs/kubelet.log"

# --- CoreDNS -------------------------------------------------------------------
sed -e "s|@IMAGE@|$COREDNS_IMAGE|g" -e "s|@DNS_IP@|$DNS_SERVICE_IP|g" -e "s|@DOMAIN@|$CLUSTER_DOMAIN|g" \
  "$here/manifests/coredns.yaml" | kubectl apply -f - >/dev/null
kubectl -n kube-system rollout status deploy/coredns --timeout=120s >/dev/null || die "CoreDNS not ready"

log "cluster up in $(( $(date +%s) - t0 ))s; export KUBECONFIG=$KUBECONFIG_FILE"
echo "$KUBECONFIG_FILE"
