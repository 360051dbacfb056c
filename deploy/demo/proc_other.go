//go:build !unix

package main

import "os/exec"

// detachFromTerminal is a no-op where process groups do not exist.
func detachFromTerminal(*exec.Cmd) {}

func killGroup(cmd *exec.Cmd) { _ = cmd.Process.Kill() }
