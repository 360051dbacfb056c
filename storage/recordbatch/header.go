// Package recordbatch reads and writes Kafka RecordBatch v2 bytes, the one
// format Tributary keeps on disk and sends on the wire.
//
// The header view (this file) is what the log engine needs on the hot path:
// it never decodes records. Record-level encoding, decoding and compression
// live beside it for the producers (edge ingest, tests) and for compaction.
package recordbatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Layout of the fixed RecordBatch v2 header.
const (
	offBaseOffset      = 0
	offLength          = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offFirstTimestamp  = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offNumRecords      = 57

	// HeaderSize is the size of the fixed RecordBatch v2 header.
	HeaderSize = 61
	// LogOverhead is the part of the header not counted by Length.
	LogOverhead = 12
	// crcStart is where the CRC-covered region begins (attributes).
	crcStart = offAttributes
)

// Attribute bits.
const (
	CompressionMask   = 0x07
	TimestampTypeBit  = 0x08
	TransactionalBit  = 0x10
	ControlBit        = 0x20
	CompressionNone   = 0
	CompressionGzip   = 1
	CompressionSnappy = 2
	CompressionLZ4    = 3
	CompressionZstd   = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors returned when bytes are not a valid batch.
var (
	// ErrShort means the buffer ends before the batch does (a torn write or
	// a partial read); more bytes may complete it.
	ErrShort = errors.New("recordbatch: truncated batch")
	// ErrCorrupt means the bytes can never be a valid batch.
	ErrCorrupt = errors.New("recordbatch: corrupt batch")
)

// Header is the decoded fixed part of a RecordBatch v2.
type Header struct {
	BaseOffset      int64
	Length          int32 // bytes after the Length field
	LeaderEpoch     int32
	Magic           int8
	CRC             uint32
	Attributes      int16
	LastOffsetDelta int32
	FirstTimestamp  int64
	MaxTimestamp    int64
	ProducerID      int64
	ProducerEpoch   int16
	BaseSequence    int32
	NumRecords      int32
}

// Size is the total size of the batch in bytes, header included.
func (h Header) Size() int { return int(h.Length) + LogOverhead }

// LastOffset is the offset of the last record the batch covers.
func (h Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset is the offset after the batch.
func (h Header) NextOffset() int64 { return h.LastOffset() + 1 }

// Compression returns the codec id in the attributes.
func (h Header) Compression() int { return int(h.Attributes & CompressionMask) }

// IsControl reports whether the batch holds transaction control records.
func (h Header) IsControl() bool { return h.Attributes&ControlBit != 0 }

// IsTransactional reports whether the batch is part of a transaction.
func (h Header) IsTransactional() bool { return h.Attributes&TransactionalBit != 0 }

// ParseHeader decodes the fixed header at the start of b and checks that the
// sizes are sane. It does not check the CRC; see Validate.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < LogOverhead {
		return Header{}, ErrShort
	}
	var h Header
	h.BaseOffset = int64(binary.BigEndian.Uint64(b[offBaseOffset:]))
	h.Length = int32(binary.BigEndian.Uint32(b[offLength:]))
	if h.Length < HeaderSize-LogOverhead {
		return h, fmt.Errorf("%w: length %d below header size", ErrCorrupt, h.Length)
	}
	if len(b) < HeaderSize {
		return h, ErrShort
	}
	h.LeaderEpoch = int32(binary.BigEndian.Uint32(b[offLeaderEpoch:]))
	h.Magic = int8(b[offMagic])
	if h.Magic != 2 {
		return h, fmt.Errorf("%w: magic %d, want 2", ErrCorrupt, h.Magic)
	}
	h.CRC = binary.BigEndian.Uint32(b[offCRC:])
	h.Attributes = int16(binary.BigEndian.Uint16(b[offAttributes:]))
	h.LastOffsetDelta = int32(binary.BigEndian.Uint32(b[offLastOffsetDelta:]))
	h.FirstTimestamp = int64(binary.BigEndian.Uint64(b[offFirstTimestamp:]))
	h.MaxTimestamp = int64(binary.BigEndian.Uint64(b[offMaxTimestamp:]))
	h.ProducerID = int64(binary.BigEndian.Uint64(b[offProducerID:]))
	h.ProducerEpoch = int16(binary.BigEndian.Uint16(b[offProducerEpoch:]))
	h.BaseSequence = int32(binary.BigEndian.Uint32(b[offBaseSequence:]))
	h.NumRecords = int32(binary.BigEndian.Uint32(b[offNumRecords:]))
	if h.LastOffsetDelta < 0 || h.NumRecords < 0 {
		return h, fmt.Errorf("%w: negative last offset delta %d or record count %d", ErrCorrupt, h.LastOffsetDelta, h.NumRecords)
	}
	if h.Compression() > CompressionZstd {
		return h, fmt.Errorf("%w: unknown compression codec %d", ErrCorrupt, h.Compression())
	}
	return h, nil
}

// Validate parses the batch at the start of b and checks its CRC-32C. It
// returns ErrShort when b ends inside the batch.
func Validate(b []byte) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	if len(b) < h.Size() {
		return h, ErrShort
	}
	if got := crc32.Checksum(b[crcStart:h.Size()], castagnoli); got != h.CRC {
		return h, fmt.Errorf("%w: crc %08x, header says %08x", ErrCorrupt, got, h.CRC)
	}
	return h, nil
}

// SetBaseOffset rewrites the base offset of the batch at the start of b. The
// CRC does not cover it, so the batch stays valid.
func SetBaseOffset(b []byte, off int64) {
	binary.BigEndian.PutUint64(b[offBaseOffset:], uint64(off))
}

// SetLeaderEpoch rewrites the partition leader epoch (also outside the CRC).
func SetLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
}

// SetLogAppendTime stamps the complete batch b with the broker's append
// time, as Kafka does for message.timestamp.type=LogAppendTime: the
// timestamp-type attribute bit is set and the max timestamp (which
// consumers then give every record) becomes ts; the CRC is recomputed.
func SetLogAppendTime(b []byte, ts int64) {
	attrs := binary.BigEndian.Uint16(b[offAttributes:]) | TimestampTypeBit
	binary.BigEndian.PutUint16(b[offAttributes:], attrs)
	binary.BigEndian.PutUint64(b[offMaxTimestamp:], uint64(ts))
	SetCRC(b)
}

// Checksum computes the CRC-32C of a batch's covered region; SetCRC stores it.
func Checksum(b []byte) uint32 { return crc32.Checksum(b[crcStart:], castagnoli) }

// SetCRC recomputes and stores the CRC of the complete batch b.
func SetCRC(b []byte) {
	binary.BigEndian.PutUint32(b[offCRC:], Checksum(b))
}

// Split walks a buffer of concatenated batches, validating each, and calls fn
// with each batch's header and bytes. It stops at the first error, which
// reports the byte position.
func Split(b []byte, fn func(h Header, batch []byte) error) error {
	pos := 0
	for pos < len(b) {
		h, err := Validate(b[pos:])
		if err != nil {
			return fmt.Errorf("batch at byte %d: %w", pos, err)
		}
		if err := fn(h, b[pos:pos+h.Size()]); err != nil {
			return err
		}
		pos += h.Size()
	}
	return nil
}
