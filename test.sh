#!/usr/bin/env bash
# The full Socius test suite, runnable on a fresh machine: it installs what the tests
# need (Debian's PostgreSQL server binaries, the pinned npm packages of the SDK
# compatibility tests), then runs every Go test.
set -euo pipefail
cd "$(dirname "$0")"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# PostgreSQL: the PostgreSQL store tests start a throwaway server from these binaries.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "test.sh: installing PostgreSQL server binaries (Debian package postgresql)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

# The real gigya npm package, pinned by compat/node/package-lock.json.
if [ -f compat/node/package-lock.json ]; then
  (cd compat/node && npm ci --no-audit --no-fund --loglevel=error)
fi

go vet ./...
go test -count=1 "$@" ./...
