#!/usr/bin/env bash
# Runs every test: Go (with -race; the interop tests with zishang520's Go
# client in test/goclient too), the Go benchmarks once, the Node
# socket.io-client compatibility tests and the browser end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test

echo "== go vet"
go vet ./...
echo "== go vet for 32-bit Linux, go build for macOS (the server builds elsewhere too; bench/ is Linux-only)"
GOARCH=386 go vet ./...
GOOS=darwin GOARCH=arm64 go build -o /dev/null $(go list ./... | grep -v /bench/)
echo "== go test -race"
go test -race -count=1 -timeout 15m ./...
echo "== go test -race (test/goclient: interop with zishang520's Go client, a module of its own)"
(cd test/goclient && go vet ./... && go test -race -count=1 -timeout 10m ./...)
echo "== go benchmarks (once, so they keep working)"
go test -run '^$' -bench . -benchtime 1x -timeout 10m ./...
echo "== node --test (socket.io-client compatibility, browser end-to-end)"
go build -o socketio-chat .
node --test --test-concurrency=1 $(find test -name "*.test.mjs" | sort)
