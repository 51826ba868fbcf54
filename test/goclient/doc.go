// Package goclient holds interop tests of the chat server with an
// independent Go implementation of the Socket.IO client:
// github.com/zishang520/socket.io/clients/socket/v3. It is a module of its
// own, so that the client (which imports that project's server modules)
// stays out of the chat's go.mod; `go test ./...` at the top of the
// repository does not enter it. Run it from this directory:
//
//	go test -race ./...
package goclient
