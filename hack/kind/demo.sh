#!/usr/bin/env bash
# demo.sh shows kubectl-tele on the local cluster, start to finish: a sample
# app, a laptop (a network namespace that reaches only the API server) with an
# ordinary user, connect, a request by name, a header intercept served by a
# local process, leave and quit. It cleans up after itself.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
bin=$ROOT_DIR/bin/kubectl-tele
echo_bin=$CACHE_DIR/images/echo
user=tele-demo
lap=1

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }
# on the laptop, as the demo user
lap() { "$here/laptop.sh" exec "$lap" runuser -u "$user" -- env HOME="/home/$user" PATH=/usr/bin:/bin "$@"; }
tele() { lap "$bin" --kubeconfig "/home/$user/kubeconfig" "$@"; }

cleanup() {
  tele quit >/dev/null 2>&1 || true
  [ -n "${local_pid:-}" ] && kill "$local_pid" 2>/dev/null || true
  "$here/laptop.sh" down "$lap" 2>/dev/null || true
  kubectl delete namespace demo --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT
[ -n "${DEMO_KEEP:-}" ] && trap - EXIT

say "A sample app in the cluster: deploy/echo and its Service, namespace demo"
# A fresh namespace, whatever an earlier run left.
kubectl delete namespace demo --ignore-not-found --wait=true --timeout=120s >/dev/null
kubectl create namespace demo >/dev/null
kubectl -n demo apply -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo}
spec:
  replicas: 2
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      containers:
      - name: echo
        image: $ECHO_IMAGE
        imagePullPolicy: IfNotPresent
        env: [{name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 8080, targetPort: http}]
YAML
kubectl -n demo rollout status deployment/echo --timeout=120s >/dev/null
# Ready endpoints, and a moment for kube-proxy to program the new Service.
ready() { [ "$(kubectl -n demo get endpointslices -l kubernetes.io/service-name=echo -o jsonpath='{.items[*].endpoints[*].conditions.ready}')" = "true true" ]; }
wait_for "the echo Service's endpoints" 60 ready
sleep 2
run kubectl -n demo get pods -o wide

say "A laptop: network namespace tele-lap$lap, ordinary user $user, reaches only the API server"
id "$user" >/dev/null 2>&1 || useradd -m -s /bin/sh "$user"
echo "$user ALL=(root) NOPASSWD: $bin helper *" >/etc/sudoers.d/kubectl-tele-demo
install -m 0600 -o "$user" "$KUBECONFIG_FILE" "/home/$user/kubeconfig"
"$here/laptop.sh" up "$lap" >/dev/null
printf '$ curl http://echo.demo:8080/  (before connect)\n'
lap curl -sS --max-time 3 http://echo.demo:8080/ || true

say "kubectl tele connect -n demo"
run tele connect -n demo
run tele status
printf '$ curl http://echo.demo:8080/\n'
lap curl -sS --max-time 5 http://echo.demo:8080/

say "A local server on the laptop's localhost:7070, and a header intercept"
lap "$echo_bin" serve -http 127.0.0.1:7070 -udp "" -name "my-laptop" >/dev/null 2>&1 &
local_pid=$!
sleep 1
run tele intercept deploy/echo --port 7070:8080 --http-match x-dev=alice
run tele list
say "From a pod in the cluster: one request without the header, one with x-dev: alice"
kubectl -n demo run demo-client --restart=Never --image="$ECHO_IMAGE" --image-pull-policy=IfNotPresent \
  --command -- /echo get -H x-dev=alice@1 http://echo:8080/ http://echo:8080/ >/dev/null
kubectl -n demo wait --for=jsonpath='{.status.phase}'=Succeeded pod/demo-client --timeout=60s >/dev/null
printf 'request 1 (no header)      answered by: %s\n' "$(kubectl -n demo logs demo-client | sed -n 1p)"
printf 'request 2 (x-dev: alice)   answered by: %s\n' "$(kubectl -n demo logs demo-client | sed -n 2p)"

say "kubectl tele leave, then quit"
run tele leave echo
run tele quit
say "Done: the cluster's pods were never restarted"
run kubectl -n demo get pods
