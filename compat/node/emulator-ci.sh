#!/usr/bin/env bash
# emulator-ci.sh: a CI job's test step against the Socius emulator. It starts
# `socius serve --emulator` with the seed, runs the tests with the gigya npm package
# pointed at it, stops it (SIGTERM), which writes the state to out.jsonl, and exits
# with the tests' status. Needs `socius` on PATH and `npm ci` done here.
set -euo pipefail
cd "$(dirname "$0")"
export SOCIUS_HTTP=${SOCIUS_HTTP:-127.0.0.1:8080}   # socius reads SOCIUS_<FLAG>
export SOCIUS_HTTPS=${SOCIUS_HTTPS:-127.0.0.1:8443}

socius serve --emulator --seed emulator-seed.jsonl --export-on-exit "${EXPORT:-out.jsonl}" &
socius_pid=$!
trap 'kill -TERM $socius_pid 2>/dev/null; wait $socius_pid' EXIT
wait_for=${SOCIUS_START_TIMEOUT:-30}   # seconds; a socius that hangs must not hang the job
until socius emulator status --url "http://$SOCIUS_HTTP" >/dev/null 2>&1; do
  kill -0 $socius_pid  # stop waiting if socius died
  if (( SECONDS >= wait_for )); then
    echo "emulator-ci.sh: socius did not answer on $SOCIUS_HTTP within $wait_for s" >&2
    exit 1
  fi
  sleep 0.2
done

# The package calls https://socialize.localtest.gigya.com/...: through Socius's HTTP
# listener as its proxy, which tunnels CONNECT to Socius's own HTTPS listener. The
# package pins its own CA list, hence NODE_TLS_REJECT_UNAUTHORIZED=0 for this process.
HTTPS_PROXY="http://$SOCIUS_HTTP" NODE_TLS_REJECT_UNAUTHORIZED=0 \
  SOCIUS_URL="http://$SOCIUS_HTTP" GIGYA_API_KEY=3_SociusCI GIGYA_SECRET=c2VjcmV0LWZvci10aGUtZ2lneWEtbGFiLTEyMzQ1Ng== \
  node --test emulator-example.test.js
