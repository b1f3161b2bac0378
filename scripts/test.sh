#!/usr/bin/env bash
# Installs everything the test suite needs, then runs it. Arguments go to pytest.
#   bash scripts/test.sh            # the default (fast) suite
#   bash scripts/test.sh --slow     # plus the long variants
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]' -e ./testkit

# The official-client harness: a pinned Node package.
if ! command -v node >/dev/null 2>&1; then
  echo "error: Node.js (>= 18) and npm are needed for the official-client harness" >&2
  exit 1
fi
if [ ! -d harness/node_modules ] || [ harness/package-lock.json -nt harness/node_modules/.package-lock.json ]; then
  npm ci --prefix harness --no-audit --no-fund --loglevel=error
fi

# A Redis server for the Redis store's tests: use one that answers, else start our own.
source scripts/redis.sh
ensure_redis

exec .venv/bin/python -m pytest "$@"
