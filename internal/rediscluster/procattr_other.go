//go:build !linux

package rediscluster

import "syscall"

// dieWithParent: only Linux can tie a child's life to its parent's; Stop
// must end the nodes elsewhere.
func dieWithParent() *syscall.SysProcAttr { return nil }
