package device

// item is one publish waiting to go out.
type item struct {
	topic    string
	payload  []byte
	seq      uint64
	numbered bool // false for injected bad traffic
	resend   bool // published before, outcome unknown
}

// queue is a bounded FIFO that drops its oldest entry when full, the way
// firmware with a fixed RAM buffer does while offline.
type queue struct {
	buf        []item
	head, size int
}

func newQueue(capacity int) *queue {
	return &queue{buf: make([]item, max(capacity, 1))}
}

func (q *queue) len() int { return q.size }

// push appends it, returning the dropped oldest entry if the queue was full.
func (q *queue) push(it item) (dropped item, didDrop bool) {
	if q.size == len(q.buf) {
		dropped, didDrop = q.pop()
	}
	q.buf[(q.head+q.size)%len(q.buf)] = it
	q.size++
	return dropped, didDrop
}

// pushFront puts it back at the head (a failed publish goes out again
// first, keeping order). When the queue is full it is the oldest entry, so
// it is the one dropped.
func (q *queue) pushFront(it item) (dropped item, didDrop bool) {
	if q.size == len(q.buf) {
		return it, true
	}
	q.head = (q.head - 1 + len(q.buf)) % len(q.buf)
	q.buf[q.head] = it
	q.size++
	return item{}, false
}

func (q *queue) pop() (item, bool) {
	if q.size == 0 {
		return item{}, false
	}
	it := q.buf[q.head]
	q.buf[q.head] = item{}
	q.head = (q.head + 1) % len(q.buf)
	q.size--
	return it, true
}
