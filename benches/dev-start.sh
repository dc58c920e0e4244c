#!/usr/bin/env bash
# Times `make dev` from its start to the moment the dev server answers
# GET /.well-known/openid-configuration, then stops it (docs/perf.md, "Benchmarks and profiles").
#
#   benches/dev-start.sh            one run; prints "make dev answered in N.N s"
#   DEV_START_RUNS=3 benches/dev-start.sh
#
# The server runs in its own process group, which is ended by its id (never by name).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PORT="${PORT:-8787}"
RUNS="${DEV_START_RUNS:-1}"
TIMEOUT="${DEV_START_TIMEOUT:-600}"
url="http://127.0.0.1:$PORT/.well-known/openid-configuration"

if curl -s -o /dev/null --max-time 1 "$url"; then
  echo "error: something already answers on $url; stop it first" >&2
  exit 1
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for run in $(seq 1 "$RUNS"); do
  start=$(date +%s.%N)
  ADMIN_SECRET="${ADMIN_SECRET:-x}" setsid make dev PORT="$PORT" >"$log" 2>&1 &
  pid=$!
  answered=""
  while kill -0 "$pid" 2>/dev/null; do
    if curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$url" | grep -q '^200$'; then
      answered=$(date +%s.%N)
      break
    fi
    if (($(echo "$(date +%s.%N) - $start > $TIMEOUT" | bc))); then break; fi
    sleep 0.1
  done
  kill -TERM -- "-$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  # wrangler leaves workerd to its own group at times: wait until the port is free again.
  for _ in $(seq 1 100); do curl -s -o /dev/null --max-time 1 "$url" || break; sleep 0.1; done
  if [ -z "$answered" ]; then
    echo "error: make dev did not answer (run $run); its output:" >&2
    tail -30 "$log" >&2
    exit 1
  fi
  printf 'run %d: make dev answered in %.1f s\n' "$run" "$(echo "$answered - $start" | bc)"
done
