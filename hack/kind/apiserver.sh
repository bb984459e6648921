#!/usr/bin/env bash
# apiserver.sh stop|start: stops the local cluster's kube-apiserver (by its
# PID file) or starts it again as cluster-up.sh does, waiting until it is
# gone or ready. For the e2e test of a control-plane blip (TestBlip); every
# other user of the shared cluster sees the outage.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

case "${1:-}" in
stop)
  stop_pid kube-apiserver
  # Gone means refusing connections, as in an outage.
  if curl -ksS --max-time 2 "https://$NODE_IP:$API_PORT/readyz" >/dev/null 2>&1; then
    die "kube-apiserver still answers after stop"
  fi
  log "kube-apiserver stopped"
  ;;
start)
  if [ -f "$STATE/pids/kube-apiserver.pid" ] && kill -0 "$(cat "$STATE/pids/kube-apiserver.pid")" 2>/dev/null; then
    die "kube-apiserver already runs (pid $(cat "$STATE/pids/kube-apiserver.pid"))"
  fi
  start_apiserver
  wait_for kube-apiserver 90 kubectl get --raw /readyz || die "kube-apiserver not ready: $STATE/logs/kube-apiserver.log"
  log "kube-apiserver ready at https://$NODE_IP:$API_PORT"
  ;;
*)
  echo "usage: $0 stop|start" >&2
  exit 2
  ;;
esac
