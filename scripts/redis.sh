# Sourced by scripts/test.sh.
#
# The Redis tests start their own servers from the redis-server binary (a single
# server, and a 3-node Redis Cluster with redis-cli --cluster create; see
# tests/support/redis_servers.py), so the binaries must be installed. A Redis that
# already answers on 127.0.0.1:6379 (or AGUI_TEST_REDIS_URL) serves the single-server
# tests; when none answers, one is started here on a private port.
redis_answers() {  # host port
  .venv/bin/python - "$1" "$2" <<'PY' >/dev/null 2>&1
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
s.sendall(b"PING\r\n")
assert s.recv(16).startswith(b"+PONG")
PY
}

install_redis() {
  if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "error: redis-server and redis-cli are needed; install Redis (e.g. apt-get install redis-server)" >&2
      exit 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: redis-server and redis-cli are needed and apt-get is not available; install Redis" >&2
    exit 1
  fi
  echo "installing redis-server and redis-tools (the Redis tests start their own servers)" >&2
  $sudo apt-get install -y -qq redis-server redis-tools >/dev/null 2>&1 \
    || ($sudo apt-get update -qq >/dev/null 2>&1 && $sudo apt-get install -y -qq redis-server redis-tools >/dev/null)
}

ensure_redis() {
  install_redis
  if [ -n "${AGUI_TEST_REDIS_URL:-}" ]; then
    return 0
  fi
  if redis_answers 127.0.0.1 6379; then
    export AGUI_TEST_REDIS_URL="redis://127.0.0.1:6379/0"
    return 0
  fi
  local port dir
  port="$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  dir="$(mktemp -d)"
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null
  for _ in $(seq 1 50); do
    if redis_answers 127.0.0.1 "$port"; then
      export AGUI_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
      echo "started a private redis-server on 127.0.0.1:$port" >&2
      # Stopped when the test run ends (test.sh runs pytest in the foreground, not exec).
      trap 'kill "$(cat "'"$dir"'/redis.pid")" 2>/dev/null || true' EXIT
      return 0
    fi
    sleep 0.1
  done
  echo "error: could not start redis-server (see $dir/redis.log)" >&2
  exit 1
}
