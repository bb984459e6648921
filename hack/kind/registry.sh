#!/usr/bin/env bash
# registry.sh starts the cluster's two image registries on the node's address,
# both CNCF Distribution over TLS with a certificate of the cluster's CA:
#   $REGISTRY       open to pull and push, as a public registry is;
#   $AUTH_REGISTRY  behind a login (htpasswd), as a private one is. Its user
#                   and password are in $STATE/registry/auth/{user,password}
#                   and a docker config holding them in
#                   $STATE/registry/auth/docker/config.json.
# Their storage lives under $STATE, so cluster-down removes it.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
pki=$STATE/pki

# serve NAME ADDR [AUTH YAML]: writes NAME's config and starts it.
serve() {
  local name=$1 addr=$2 auth=${3:-} dir=$STATE/registry/$1
  mkdir -p "$dir/data"
  cat >"$dir/config.yml" <<YAML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
  delete:
    enabled: true
http:
  addr: $addr
  tls:
    certificate: $pki/registry.crt
    key: $pki/registry.key
$auth
YAML
  # OTEL_TRACES_EXPORTER=none: the registry's tracing would otherwise try
  # to export to an outside collector.
  start "registry-$name" env OTEL_TRACES_EXPORTER=none "$REGISTRY_BIN" serve "$dir/config.yml"
}

serve open "$REGISTRY"

authdir=$STATE/registry/auth
mkdir -p "$authdir/docker"
if [ ! -f "$authdir/password" ]; then
  echo tele >"$authdir/user"
  openssl rand -hex 16 >"$authdir/password"
fi
user=$(cat "$authdir/user") password=$(cat "$authdir/password")
htpasswd -Bbn "$user" "$password" >"$authdir/htpasswd" 2>/dev/null
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$AUTH_REGISTRY" "$(printf '%s:%s' "$user" "$password" | base64 -w0)" \
  >"$authdir/docker/config.json"
serve auth "$AUTH_REGISTRY" "auth:
  htpasswd:
    realm: kubectl-tele-local
    path: $authdir/htpasswd"

for r in "$REGISTRY" "$AUTH_REGISTRY"; do
  wait_for "registry $r" 30 curl -sS --cacert "$pki/ca.crt" -o /dev/null "https://$r/v2/" \
    || die "registry $r did not start: $STATE/logs/registry-*.log"
done
log "registries up: https://$REGISTRY (open), https://$AUTH_REGISTRY (login in $authdir)"
