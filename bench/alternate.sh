#!/usr/bin/env bash
# Alternates server binaries under one load-generator point, round after
# round, and prints one line per run: for A/B comparisons of two builds on
# a machine whose speed drifts (docs/BENCHMARKS.md). bench/run.sh measures
# each server once; this repeats a single point so the drift shows as
# spread, not as a difference.
#
#   bench/alternate.sh [-rounds N] BIN... -- LOADGEN_FLAGS...
#
# Each BIN is started as `BIN -addr 127.0.0.1:9115 -log-level warn
# -max-http-connections 1500` (a path ending in "floor" as `BIN -addr …`),
# bench/loadgen runs against it with LOADGEN_FLAGS and -pid, and the line
# printed is the loadgen's summary of each point (or, with -scenario idle,
# each ramp's rate and CPU per connect, and the CPU per disconnect when all
# clients leave at once). Example, two builds of the server:
#
#   git stash && go build -o /tmp/old . && git stash pop && go build -o /tmp/new .
#   bench/alternate.sh -rounds 4 /tmp/old /tmp/new -- -clients 1000 -senders 10 -rates 25 -duration 6s -drain 2s -settle 1s -stop-p99 0
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3
if [[ ${1:-} == -rounds ]]; then rounds=$2; shift 2; fi
bins=()
while [[ $# -gt 0 && $1 != -- ]]; do bins+=("$1"); shift; done
[[ ${1:-} == -- ]] || { echo "usage: $0 [-rounds N] BIN... -- LOADGEN_FLAGS..." >&2; exit 2; }
shift
lg=$(mktemp -d)/loadgen
go build -o "$lg" ./bench/loadgen
addr=127.0.0.1:9115
for ((r = 1; r <= rounds; r++)); do
	for bin in "${bins[@]}"; do
		if [[ $bin == *floor ]]; then
			"$bin" -addr $addr >/dev/null 2>&1 &
		else
			"$bin" -addr $addr -log-level warn -max-http-connections 1500 >/dev/null 2>&1 &
		fi
		pid=$!
		for _ in $(seq 100); do
			if (echo >/dev/tcp/127.0.0.1/9115) 2>/dev/null; then break; fi
			sleep 0.05
		done
		out=$("$lg" -url "http://$addr/socket.io/" -pid $pid "$@" 2>&1) || true
		kill $pid 2>/dev/null || true
		wait $pid 2>/dev/null || true
		printf '%d %s: ' "$r" "$(basename "$bin")"
		if [[ " $* " == *" -scenario idle "* ]]; then
			python3 -c '
import json, sys
t = sys.stdin.read(); j = json.loads(t[t.index("{"):])
line = "  ".join("%d→%d %.0f/s, server %.0f µs, loadgen %.0f µs per connect" % (r["from"], r["to"], r["perSec"],
	r["serverCPUS"] / (r["to"] - r["from"]) * 1e6, r["loadgenCPUS"] / (r["to"] - r["from"]) * 1e6) for r in j["ramps"])
d = j.get("disconnect")
if d and d["clients"]:
	line += "  all leave: server %.1f µs per disconnect, busy %.2fs" % (d["serverCPUS"] / d["clients"] * 1e6, d["busySeconds"])
print(line)' <<<"$out"
		else
			grep -E 'msg/s' <<<"$out" | sed -E 's/^loadgen [^:]*: //; s/, order differs[^,]*,[^,]*,/,/' || echo "$out" | tail -3
		fi
	done
done
