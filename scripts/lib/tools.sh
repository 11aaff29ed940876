# Shared by keyrot's scripts: installs the pinned Python tools into a project-local venv and
# starts/stops moto server on a free loopback port.

KEYROT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KEYROT_VENV="$KEYROT_ROOT/.venv"
KEYROT_STATE="$KEYROT_ROOT/target/keyrot"

log() { printf '[keyrot] %s\n' "$*" >&2; }

# Creates VENV from REQUIREMENTS + CONSTRAINTS when missing or when the pins changed.
ensure_venv() {
  local venv="$1" requirements="$2" constraints="$3"
  local stamp="$venv/.keyrot-requirements"
  if ! { [ -x "$venv/bin/python" ] && [ -f "$stamp" ] \
      && cat "$requirements" "$constraints" | cmp -s - "$stamp"; }; then
    log "installing $(basename "$(dirname "$requirements")")/$(basename "$requirements") into $venv (first run only)"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      -r "$requirements" -c "$constraints"
    cat "$requirements" "$constraints" > "$stamp"
  fi
}

# .venv with the pinned Python tools (moto, awscli, cargo-lambda), its bin/ first on PATH.
ensure_python_tools() {
  ensure_venv "$KEYROT_VENV" "$KEYROT_ROOT/tools/requirements.txt" "$KEYROT_ROOT/tools/constraints.txt"
  export PATH="$KEYROT_VENV/bin:$PATH"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# Starts moto on a free port; sets MOTO_URL and MOTO_PID. Logs go to $KEYROT_STATE/moto.log.
start_moto() {
  mkdir -p "$KEYROT_STATE"
  local port
  port="$(free_port)"
  # The version limit (tools/moto_server.py) is low enough for a test to reach it and well
  # above what any other test's secret accumulates (the longest run makes 52 versions).
  KEYROT_MOTO_MAX_VERSIONS=60 \
    "$KEYROT_VENV/bin/python" "$KEYROT_ROOT/tools/moto_server.py" -H 127.0.0.1 -p "$port" \
    >"$KEYROT_STATE/moto.log" 2>&1 &
  MOTO_PID=$!
  MOTO_URL="http://127.0.0.1:$port"
  local waited=0
  until "$KEYROT_VENV/bin/python" - "$MOTO_URL" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(sys.argv[1] + "/moto-api/", timeout=1)
PY
  do
    if ! kill -0 "$MOTO_PID" 2>/dev/null; then
      log "moto server exited; its log:"; cat "$KEYROT_STATE/moto.log" >&2; return 1
    fi
    waited=$((waited + 1))
    if [ "$waited" -gt 100 ]; then log "moto server not ready after 20 s"; return 1; fi
    sleep 0.2
  done
  log "moto server ready at $MOTO_URL (pid $MOTO_PID)"
}

stop_moto() {
  if [ -n "${MOTO_PID:-}" ] && kill -0 "$MOTO_PID" 2>/dev/null; then
    kill "$MOTO_PID" 2>/dev/null || true
    wait "$MOTO_PID" 2>/dev/null || true
  fi
  MOTO_PID=""
}
