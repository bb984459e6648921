#!/usr/bin/env bash
# build-coredns.sh builds CoreDNS (the cluster's DNS) from the Go module proxy
# into the version-keyed cache. Pinned: an older module zip once hung here.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
if [ -x "$COREDNS_BIN" ]; then log "coredns $COREDNS_VERSION cached"; exit 0; fi
d=$(dirname "$COREDNS_BIN")
mkdir -p "$d"
log "building coredns $COREDNS_VERSION (cold: about 5 minutes)"
CGO_ENABLED=0 GOBIN="$d" timeout 1800 go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"
log "coredns built"
