//go:build !linux

package engineio

import "net"

// AcceptListener returns ln: accepting outside Go's network poller is for
// the front door, on Linux only.
func AcceptListener(ln net.Listener) net.Listener { return ln }
