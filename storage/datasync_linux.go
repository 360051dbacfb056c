package storage

import (
	"os"
	"syscall"
)

// datasync is fdatasync(2): the data and the metadata needed to read it
// back, not the modification time. It goes through the file's raw conn, so
// the descriptor is held for the call: syncLoop fsyncs outside the log's
// lock, and a Close or TruncateTo closing the file meanwhile makes this
// return an error instead of racing on (or syncing a reused) descriptor.
func datasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return serr
}
