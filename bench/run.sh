#!/usr/bin/env bash
# Side-by-side benchmark of our Go server and the Node.js tutorial server
# (docs/BENCHMARKS.md). Builds both sides from this tree and runs
# bench/driver; extra arguments go to the driver:
#   bench/run.sh            full run (about 15 minutes), writes bench/results/latest.{json,md}
#                           and docs/img/broadcast-sweep.png
#   bench/run.sh -quick     development run (3–4 minutes), writes under bench/results/tmp/
#   bench/run.sh -scenarios idle,cpu -out bench/results/tmp/some.json
#                           some scenarios only (idle, sweep, cpu, fanout, polling, slow, namespaces)
#   bench/run.sh -servers go -scenarios sweep,idle -profile bench/results/tmp/prof
#                           pprof CPU/allocation/heap profiles of our server under load
set -euo pipefail
cd "$(dirname "$0")/.."

# Every client is a socket on both sides: 18 000 idle clients need 18 000
# descriptors in the server and as many in the load generator, far more than
# the usual 1024. Raise the soft limit as far as the hard limit allows; the
# driver checks it against the scenarios it is asked to run and stops with a
# clear message, before building anything, when it is too low.
want=65536
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want" ]; then
	ulimit -n "$want" 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
fi
echo "bench: open-file limit $(ulimit -n) (hard limit $(ulimit -Hn))" >&2

if [ ! -d node_modules/socket.io ] || [ ! -d node_modules/express ] || [ ! -d node_modules/socket.io-client/dist ]; then
	npm ci --no-audit --no-fund
fi
exec go run ./bench/driver "$@"
