package main

import "syscall"

// childSysProcAttr puts a child in its own process group and has the kernel
// kill it if the harness dies without cleaning up.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
