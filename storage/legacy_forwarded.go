package storage

// Until core/server passes AppendOptions.Sequences (core adopts the storage
// contracts after the onemodel refactor merges), an idempotent append that
// names no mode gets the one a forwarded producer id implied before: the bit
// below is internal/forwarded's, copied here for that window only, and its
// test checks the two agree. Delete this file with that change.

const legacyForwardedBit = int64(1) << 62

func legacyForwardedMode(pid int64) SequenceMode {
	if IsForwardedProducer(pid) {
		return SequenceFromSource
	}
	return SequencePerBatch
}

// IsForwardedProducer reports whether pid is a bridge's forwarded producer id.
// New code uses forwarded.IsProducerID; this stays until core/server's tests
// move to it.
func IsForwardedProducer(pid int64) bool { return pid > 0 && pid&legacyForwardedBit != 0 }
