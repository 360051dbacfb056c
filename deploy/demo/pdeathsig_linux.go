package main

import "syscall"

// setParentDeathSignal makes the kernel SIGTERM a daemon when the demo dies
// for any reason (SIGKILL included), so no daemon outlives it.
func setParentDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGTERM }
