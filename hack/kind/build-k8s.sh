#!/usr/bin/env bash
# build-k8s.sh builds the Kubernetes binaries the local cluster runs (and the
# kubectl the tests drive) from k8s.io/kubernetes through the Go module proxy,
# into a git-ignored folder keyed by version, so a second run costs nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=hack/kind/lib.sh
. "$here/lib.sh"

out="$K8S_BIN"
cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
missing=()
for c in "${cmds[@]}"; do [ -x "$out/$c" ] || missing+=("k8s.io/kubernetes/cmd/$c"); done
if [ ${#missing[@]} -eq 0 ]; then
  log "kubernetes $K8S_VERSION binaries cached in $out"
  exit 0
fi
mkdir -p "$out.tmp"
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
log "building ${missing[*]} (cold: about 15 minutes on 2 cores)"
start=$(date +%s)
(cd "$here/k8s" && CGO_ENABLED=0 timeout 3000 go build -trimpath -ldflags "$ldflags" -o "$out.tmp/" "${missing[@]}")
mkdir -p "$out"
mv "$out.tmp"/* "$out/"
rmdir "$out.tmp"
log "built in $(( $(date +%s) - start ))s"
