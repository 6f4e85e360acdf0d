#!/usr/bin/env bash
# Stop a server started by scripts/start_vllm_server.sh: SIGTERM the PID in PID_FILE (cda serve
# then stops vLLM and its engine processes), wait up to 60 s, SIGKILL if still there, and
# SIGKILL the vLLM process group named in PID_FILE.vllm in case it outlived cda serve.
# Safe to call when the server is already gone.
set -uo pipefail
PID_FILE=${1:-outputs/vllm-server.pid}
[[ -f "$PID_FILE" ]] || exit 0
PID=$(cat "$PID_FILE")
KILLED=0
if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then
  kill -TERM "$PID" 2>/dev/null
  for _ in $(seq 1 60); do
    kill -0 "$PID" 2>/dev/null || break
    sleep 1
  done
  if kill -0 "$PID" 2>/dev/null; then
    echo "vLLM server $PID did not stop in 60s; killing it" >&2
    kill -KILL "$PID" 2>/dev/null
    KILLED=1
  fi
fi
# If cda serve had to be killed, its vLLM child (own process group) is still there.
if (( KILLED )) && [[ -f "$PID_FILE.vllm" ]]; then
  VPID=$(cat "$PID_FILE.vllm")
  [[ -n "$VPID" ]] && kill -KILL -- "-$VPID" 2>/dev/null
fi
rm -f "$PID_FILE" "$PID_FILE.vllm"
