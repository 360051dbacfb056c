//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

func detachFromTerminal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
