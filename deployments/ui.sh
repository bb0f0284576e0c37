#!/usr/bin/env bash
# Start the Prefect UI on 127.0.0.1:4200 and serve the campaign deployment beside it.
# Ctrl-C stops both. Runs land in runs/scheduled/ (or the campaign_dir you pass when triggering).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
export PREFECT_API_URL=http://127.0.0.1:4200/api
"$BIN/prefect" server start --host 127.0.0.1 --port 4200 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do
  if "$BIN/python" -c "import urllib.request,sys; urllib.request.urlopen('$PREFECT_API_URL/health', timeout=1)" 2>/dev/null; then
    break
  fi
  sleep 1
done
echo "Prefect UI: http://127.0.0.1:4200  (deployment campaign/smoke-nightly is served below)"
echo "Trigger it:  PREFECT_API_URL=$PREFECT_API_URL $BIN/prefect deployment run campaign/smoke-nightly"
"$BIN/closedloop" serve --config configs/smoke.toml
