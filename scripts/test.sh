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

# The static checks, before any test: each fails the script on a violation.
#   ruff         lint and format (configuration in pyproject.toml)
#   mypy         strict types of the package (its py.typed promises them to users)
#   lint-imports the rooms import one way, no cycles (contracts in pyproject.toml)
echo "== ruff check" >&2
.venv/bin/ruff check .
echo "== ruff format --check" >&2
.venv/bin/ruff format --check .
echo "== mypy" >&2
.venv/bin/mypy
echo "== lint-imports" >&2
.venv/bin/lint-imports

# The official-client harness: a pinned Node package.
if ! command -v node >/dev/null 2>&1; then
  echo "error: Node.js (>= 18) and npm are needed for the official-client harness" >&2
  exit 1
fi
if [ ! -d harness/node_modules ] || [ harness/package-lock.json -nt harness/node_modules/.package-lock.json ]; then
  npm ci --prefix harness --no-audit --no-fund --loglevel=error
fi

# The /ui page's official-client bundle: its build is checked against the committed file.
if [ ! -d ui/node_modules ] || [ ui/package-lock.json -nt ui/node_modules/.package-lock.json ]; then
  npm ci --prefix ui --no-audit --no-fund --loglevel=error
fi

# Debian's chromium for the /ui browser tests (Playwright drives it; it downloads no browser).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: the browser tests need Debian's chromium: apt-get install chromium (as root)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
fi

# Redis for the Redis tests: the binaries (installed when missing) and a server that answers.
source scripts/redis.sh
ensure_redis

# Not exec: the EXIT trap of redis.sh stops a Redis it started.
.venv/bin/python -m pytest "$@"
