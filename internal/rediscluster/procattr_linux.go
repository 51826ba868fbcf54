package rediscluster

import "syscall"

// dieWithParent has a node killed when the process that started it dies.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
