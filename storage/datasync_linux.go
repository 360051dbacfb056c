package storage

import (
	"os"
	"syscall"
)

// datasync flushes a segment's data and the metadata needed to read it back
// (its size), skipping timestamps: fdatasync, cheaper than fsync on ext4.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
