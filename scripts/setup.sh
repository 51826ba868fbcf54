#!/usr/bin/env bash
# Installs everything the server and its tests need on a fresh Debian machine
# with Go >= 1.26 and Node >= 20: npm packages from the lockfile, Go modules,
# and (for the tests) Debian's chromium, nginx, redis-server and postgresql when
# missing.
# Usage: scripts/setup.sh [--test]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
go mod download
(cd test/goclient && go mod download) # the interop tests' module

if [ "${1:-}" = "--test" ]; then
  need=()
  command -v chromium >/dev/null || need+=(chromium)
  command -v nginx >/dev/null || need+=(nginx)
  command -v redis-server >/dev/null || need+=(redis-server)
  command -v pg_ctlcluster >/dev/null || need+=(postgresql)
  if [ ${#need[@]} -gt 0 ]; then
    echo "setup: installing ${need[*]} from Debian's packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "setup: starting redis-server on 127.0.0.1:6379" >&2
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  # The history tests (-history postgres://…) create and drop databases as
  # user postgres on 127.0.0.1:5432, without a password.
  if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
    ver=$(ls /usr/lib/postgresql | sort -V | tail -1)
    echo "setup: starting PostgreSQL $ver on 127.0.0.1:5432 (user postgres trusted on the loopback address)" >&2
    pg_lsclusters -h | grep -q "^$ver main " || pg_createcluster "$ver" main >/dev/null
    hba=/etc/postgresql/$ver/main/pg_hba.conf
    grep -q "socketio-chat tests" "$hba" || sed -i '1i host all postgres 127.0.0.1/32 trust # socketio-chat tests' "$hba"
    pg_ctlcluster "$ver" main start || pg_ctlcluster "$ver" main reload
    for _ in $(seq 50); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 0.1; done
  fi
fi
