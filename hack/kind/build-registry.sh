#!/usr/bin/env bash
# build-registry.sh builds the CNCF Distribution registry (the cluster's image
# registry) from the Go module proxy into the version-keyed cache.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
if [ -x "$REGISTRY_BIN" ]; then log "registry $REGISTRY_VERSION cached"; exit 0; fi
d=$(dirname "$REGISTRY_BIN")
mkdir -p "$d"
log "building the distribution registry $REGISTRY_VERSION (cold: about 2 minutes)"
CGO_ENABLED=0 GOBIN="$d" timeout 1200 go install -trimpath -ldflags "-s -w" \
  "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION"
log "registry built"
