#!/usr/bin/env bash
# The full Socius test suite, runnable on a fresh machine: it installs what the tests
# need (Debian's PostgreSQL server binaries, PgBouncer and nginx, Debian's Chromium for
# the emulator console's browser test, the pinned npm packages of the SDK compatibility
# and browser tests), runs go vet and staticcheck, then runs every Go test, and the
# in-process packages again under the race detector.
set -euo pipefail
cd "$(dirname "$0")"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# PostgreSQL: the PostgreSQL store tests start a throwaway server from these binaries.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "test.sh: installing PostgreSQL server binaries (Debian package postgresql)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

# Chromium: the emulator console's browser test drives Debian's headless Chromium.
if [ ! -x /usr/bin/chromium ]; then
  echo "test.sh: installing Chromium (Debian package chromium)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# PgBouncer: the PostgreSQL store tests run through a real one in transaction mode.
if [ ! -x /usr/sbin/pgbouncer ] && ! command -v pgbouncer >/dev/null; then
  echo "test.sh: installing PgBouncer (Debian package pgbouncer)"
  as_root apt-get update -qq
  # Should its service not start (port 6432 taken), the package fails to configure:
  # the tests need only the binary, which is in place either way.
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null ||
    [ -x /usr/sbin/pgbouncer ]
fi

# nginx: a test puts Socius behind a real TLS-terminating nginx.
if [ ! -x /usr/sbin/nginx ] && ! command -v nginx >/dev/null; then
  echo "test.sh: installing nginx (Debian package nginx-light)"
  as_root apt-get update -qq
  # The package starts its own service where the machine lets it, and fails to
  # configure should that service not start (port 80 taken): the tests need only the
  # binary, which is in place either way. (PgBouncer and nginx come last, so that
  # such a failure holds up no other installation.)
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null ||
    [ -x /usr/sbin/nginx ]
fi

# The real gigya npm package, pinned by compat/node/package-lock.json.
if [ -f compat/node/package-lock.json ]; then
  (cd compat/node && npm ci --no-audit --no-fund --loglevel=error)
fi

# playwright-core, pinned by compat/browser/package-lock.json (it never downloads a
# browser: the test points it at /usr/bin/chromium).
if [ -f compat/browser/package-lock.json ]; then
  (cd compat/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi

go vet ./...
# staticcheck, pinned (fetched through the Go module proxy on first use).
GOFLAGS=-mod=mod go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
# Socius builds as one static binary for any platform: a 32-bit one and Windows (whose
# code paths differ: no mapping of the WAL-index, nonce tables on the heap). Their tests
# vet too (GOOS=windows go vet ./..., GOOS=linux GOARCH=386 go vet ./...: the Linux-only
# parts are behind build constraints), but that is not run here: it compiles every test
# package again for each target, a minute or two each. Built without optimizations
# (-N -l): what is checked is that it compiles and links, and so each build takes a
# fifth less time (every package compiled again for the target, SQLite's C code turned
# Go the largest).
for target in linux/386 windows/amd64; do
  CGO_ENABLED=0 GOOS="${target%/*}" GOARCH="${target#*/}" go build -gcflags='all=-N -l' -o /dev/null ./cmd/socius
done
rm -f test-artifacts/console.png test-artifacts/console-user.png
# -vet=off: go vet ./... ran every check above, of which go test would run a part again
# for each package (and again under -race).
# -p: test binaries at once, twice the CPUs (go test's default is one per CPU), at
# least 4. Much of the suite waits rather than computes (servers it starts, timeouts
# it waits out, PostgreSQL), so that with two CPUs two binaries at a time left them
# idle: the two longest packages (cmd/socius, postgres, about three minutes each)
# started two minutes apart. -timeout: go test's 10 min per binary, doubled, as a
# package then shares the CPUs with more others.
parallel=$(( $(nproc) * 2 ))
[ "$parallel" -ge 4 ] || parallel=4
go test -count=1 -vet=off -p "$parallel" -timeout 20m "$@" ./...
# Every package again under the race detector but the process-level and PostgreSQL
# tests, which are slow under it (about two minutes more).
go test -race -count=1 -vet=off -p "$parallel" -timeout 20m "$@" $(go list ./... | grep -v -E '/(cmd/socius|e2e|postgres)$')
if [ -f test-artifacts/console.png ]; then
  echo "test.sh: screenshot of the emulator console: $PWD/test-artifacts/console.png"
fi
