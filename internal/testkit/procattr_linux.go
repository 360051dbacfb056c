package testkit

import (
	"os/exec"
	"syscall"
)

// dieWithParent has the kernel kill cmd when the test process dies, so an
// interrupted or timed-out test leaves no broker running. (The signal is
// tied to the OS thread that starts cmd; Go ends a thread only when a
// goroutine locked to it returns, which the test kit never does.)
func dieWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
