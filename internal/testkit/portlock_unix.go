//go:build unix

package testkit

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// heldPorts keeps the lock files of the ports this process was given open
// (and so locked) until it exits; the kernel releases them then, however
// it ends.
var heldPorts []*os.File

// claimPort takes port for this process across every test process on the
// machine: go test runs packages in parallel, and a broker a test restarts
// binds its port again, so a port another process was given in between
// would make the restart fail ("address already in use"). mu held.
func claimPort(port int) bool {
	dir := filepath.Join(os.TempDir(), "tributary-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return true // no registry: fall back to this process's own record
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return false // another live process holds it
	}
	heldPorts = append(heldPorts, f)
	return true
}
