//go:build !linux

package engineio

import "net"

// frontConn is the front door's connection: none but on Linux.
type frontConn struct{ deadline int64 }

func (fr *frontConn) close() {}

// start gives nc to net/http: the front door needs the epoll engine.
func (f *Front) start(nc net.Conn) { f.HandBack.give(nc) }

// frontHijacked is the connection a handler hijacked from the front door:
// never, but on Linux.
type frontHijacked struct{ *returnedConn }
