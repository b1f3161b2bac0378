# Sourced by scripts/test.sh: make AGUI_TEST_REDIS_URL point at a Redis that answers.
redis_answers() {  # host port
  .venv/bin/python - "$1" "$2" <<'PY' >/dev/null 2>&1
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
s.sendall(b"PING\r\n")
assert s.recv(16).startswith(b"+PONG")
PY
}

ensure_redis() {
  if [ -n "${AGUI_TEST_REDIS_URL:-}" ]; then
    return 0
  fi
  if redis_answers 127.0.0.1 6379; then
    export AGUI_TEST_REDIS_URL="redis://127.0.0.1:6379/0"
    return 0
  fi
  if ! command -v redis-server >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing redis-server (no Redis answers on 127.0.0.1:6379)" >&2
    (apt-get install -y -qq redis-server >/dev/null 2>&1 || (apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq redis-server >/dev/null 2>&1)) || true
  fi
  if command -v redis-server >/dev/null 2>&1; then
    local port=6391 dir
    dir="$(mktemp -d)"
    redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
      --daemonize yes --logfile "$dir/redis.log" >/dev/null
    for _ in $(seq 1 50); do
      if redis_answers 127.0.0.1 "$port"; then
        export AGUI_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
        echo "started a private redis-server on 127.0.0.1:$port" >&2
        return 0
      fi
      sleep 0.1
    done
  fi
  echo "warning: no Redis server available; the Redis store tests will be skipped" >&2
}
