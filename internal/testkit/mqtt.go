package testkit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
)

// PublishWindow sends the QoS 1 PUBLISH packets next makes for seq 0 to
// n-1 on c as fast as the broker takes them, keeping at most window
// unacknowledged, and returns once all n are acknowledged. Packets are
// buffered and flushed when the window is used up or the buffer is full,
// so a fast broker sees few, large writes. next's packet need only stay
// valid until the next call. It returns an error rather than failing a
// test, so the benchmarks use it too.
func PublishWindow(c net.Conn, n, window int, next func(seq int) []byte) error {
	credit := make(chan struct{}, window)
	for range window {
		credit <- struct{}{}
	}
	acked := make(chan error, 1)
	go func() { acked <- ReadPubacks(c, n, credit) }()
	w := bufio.NewWriterSize(c, 16<<10)
	for s := 0; s < n; s++ {
		select {
		case <-credit:
		case err := <-acked:
			if err == nil {
				err = errors.New("acknowledgements ended early")
			}
			return err
		}
		pkt := next(s)
		if _, err := w.Write(pkt); err != nil {
			return err
		}
		if len(credit) == 0 || w.Available() < len(pkt) {
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return <-acked
}

// ReadPubacks reads n success PUBACKs (remaining length 2) from r, failing
// on anything else, and sends on credit after each when credit is not nil.
func ReadPubacks(r io.Reader, n int, credit chan<- struct{}) error {
	br := bufio.NewReaderSize(r, 4096)
	var ack [4]byte
	for i := 0; i < n; i++ {
		if _, err := io.ReadFull(br, ack[:2]); err != nil {
			return fmt.Errorf("read puback %d of %d: %w", i, n, err)
		}
		if ack[0] != 0x40 || ack[1] != 2 {
			return fmt.Errorf("want puback, got % x", ack[:2])
		}
		if _, err := io.ReadFull(br, ack[2:]); err != nil {
			return err
		}
		if credit != nil {
			credit <- struct{}{}
		}
	}
	return nil
}
