//go:build !linux

package engineio

// epollEngine is Linux only; elsewhere every connection has a reader goroutine.
func epollEngine() ioEngine { return nil }
