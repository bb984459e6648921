# lib.sh: settings and helpers shared by the hack/kind scripts. Sourced, not run.
# Every address and folder of the local cluster is decided here, once.

KIND_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(cd "$KIND_DIR/../.." && pwd)
K8S_VERSION=${K8S_VERSION:-v1.37.2}
COREDNS_VERSION=${COREDNS_VERSION:-v1.15.0}
REGISTRY_VERSION=${REGISTRY_VERSION:-v3.0.0}
CACHE_DIR=${TELE_CACHE_DIR:-$KIND_DIR/.cache}
K8S_BIN=$CACHE_DIR/kubernetes-$K8S_VERSION
COREDNS_BIN=$CACHE_DIR/coredns-$COREDNS_VERSION/coredns
# systemd-resolved and libnss-resolve unpacked (install-deps.sh), for the e2e
# laptops with a real resolver (laptop.sh up-resolved).
RESOLVED_DIR=${TELE_RESOLVED_DIR:-$CACHE_DIR/systemd-resolved}
REGISTRY_BIN=$CACHE_DIR/registry-$REGISTRY_VERSION/registry
# All state of a running cluster lives under STATE; cluster-down removes it.
STATE=${TELE_CLUSTER_DIR:-$KIND_DIR/.cluster}
# A worktree's .cluster may be a symlink to the one cluster's folder: work on
# the folder itself, so that cluster-down unmounts and removes what is in it
# (the mounts are under the real path) rather than only the link.
[ -L "$STATE" ] && STATE=$(readlink -f "$STATE")
KUBECONFIG_FILE=$STATE/kubeconfig

# Addresses. The node and API server sit on a /32 held by a bridge device (this
# kernel has no dummy driver). The CIDRs are private ranges that no real network
# of this machine uses; lib guards them so nothing for them leaves the host.
NODE_NAME=tele-node
HOST_DEV=tele-host0
NODE_IP=10.201.0.1
POD_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
DNS_SERVICE_IP=10.96.0.10
CLUSTER_DOMAIN=cluster.local
CNI_BRIDGE=tele-cni0
API_PORT=6443

log() { printf '%s [kind] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Sockets live under /run: a Unix socket path must stay under 108 bytes, and a
# clone may sit at any depth.
RUN_DIR=/run/tele-kind
CONTAINERD_SOCK=$RUN_DIR/containerd.sock
# The cluster's registries (CNCF Distribution, TLS with a certificate of the
# cluster's CA, trusted by containerd through its hosts configuration). Every
# image the cluster runs is pushed to REGISTRY and pulled from there, as on a
# user's cluster. AUTH_REGISTRY needs a login (htpasswd): the private-registry
# tests push there; its credentials are in $STATE/registry/auth.
REGISTRY=$NODE_IP:5000
AUTH_REGISTRY=$NODE_IP:5001
PAUSE_IMAGE=$REGISTRY/pause:3.10
COREDNS_IMAGE=$REGISTRY/coredns:$COREDNS_VERSION
ECHO_IMAGE=$REGISTRY/echo:dev
ETCD_CLIENT_PORT=23790
ETCD_PEER_PORT=23800

export KUBECONFIG=$KUBECONFIG_FILE
kubectl() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"; }
ctr() { command ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }

# go_install_cached NAME VERSION BIN PACKAGE@VERSION MINUTES: builds a
# static Go program from the module proxy into BIN's folder once, keyed by
# version; MINUTES is the cold build time told to the user (the limit is 10 times that).
go_install_cached() {
  local name=$1 version=$2 bin=$3 pkg=$4 minutes=$5
  if [ -x "$bin" ]; then log "$name $version cached"; return 0; fi
  mkdir -p "$(dirname "$bin")"
  log "building $name $version (cold: about $minutes minutes)"
  CGO_ENABLED=0 GOBIN=$(dirname "$bin") timeout $((minutes * 600)) go install -trimpath -ldflags "-s -w" "$pkg"
  log "$name built"
}

# wait_for DESCRIPTION SECONDS COMMAND...: retries COMMAND once a second.
wait_for() {
  local what=$1 secs=$2; shift 2
  local i
  for ((i = 0; i < secs; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  log "timed out after ${secs}s waiting for $what"
  return 1
}

# start NAME COMMAND...: runs a cluster daemon in its own session, logging to
# $STATE/logs/NAME.log, its PID in $STATE/pids/NAME.pid for cluster-down.
start() {
  local name=$1; shift
  mkdir -p "$STATE/logs" "$STATE/pids"
  setsid nohup "$@" >"$STATE/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/pids/$name.pid"
}

# start_apiserver starts kube-apiserver as cluster-up.sh does (its PKI and
# audit policy must exist); hack/kind/apiserver.sh restarts it with this too.
start_apiserver() {
  local pki=$STATE/pki
  start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --audit-policy-file="$STATE/audit-policy.yaml" --audit-log-path="$STATE/logs/audit.log" \
    --audit-log-maxsize=100 --audit-log-maxbackup=1 \
    --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port="$API_PORT" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --client-ca-file="$pki/ca.crt" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$pki/ca.crt" \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer="https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true --profiling=false
}

# stop_pid NAME: stops the daemon start NAME started (TERM, then KILL after
# 5 s) and removes its PID file.
stop_pid() {
  local f=$STATE/pids/$1.pid pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$f"
}

default_if() { ip route show default | awk '{for (i=1;i<NF;i++) if ($i=="dev") {print $(i+1); exit}}'; }
