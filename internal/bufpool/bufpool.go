// Package bufpool keeps large byte buffers for reuse, in power-of-two size
// classes from 64 KiB to 16 MiB. A fresh large slice costs the runtime a
// zeroing pass as long as the copy that fills it; a broker that reads and
// encodes megabytes a fetch pays that on every request unless the buffers
// come back. Larger buffers are not kept, so a rare huge fetch does not pin
// its memory in the pool.
package bufpool

import (
	"math/bits"
	"sync"
)

const (
	minShift = 16 // 64 KiB: smaller buffers are cheap to allocate
	maxShift = 24 // 16 MiB: larger ones are not kept
)

var classes [maxShift - minShift + 1]sync.Pool // of *[]byte

// class is the index of the smallest class holding n bytes, or -1 when n is
// outside the pooled range.
func class(n int) int {
	if n <= 0 || n > 1<<maxShift {
		return -1
	}
	shift := bits.Len(uint(n - 1))
	if shift < minShift {
		return -1
	}
	return shift - minShift
}

// Get returns an empty buffer with room for at least n bytes.
func Get(n int) []byte {
	c := class(n)
	if c < 0 {
		return make([]byte, 0, n)
	}
	if bp, ok := classes[c].Get().(*[]byte); ok {
		return (*bp)[:0]
	}
	return make([]byte, 0, 1<<(c+minShift))
}

// Put offers b's array for reuse. The caller must hold no other reference
// into it. Buffers whose capacity is not exactly a class size (those Get did
// not hand out) are left to the collector.
func Put(b []byte) {
	n := cap(b)
	c := class(n)
	if c < 0 || n != 1<<(c+minShift) {
		return
	}
	b = b[:0]
	classes[c].Put(&b)
}
