//go:build !linux

// Command floor is the benchmark's floor broadcaster; it needs epoll (Linux).
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "floor: Linux only (epoll)")
	os.Exit(1)
}
