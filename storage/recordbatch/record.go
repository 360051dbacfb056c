package recordbatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
)

// RecordHeader is one key/value header of a record.
type RecordHeader struct {
	Key   string
	Value []byte
}

// Record is one decoded record.
type Record struct {
	Offset    int64  // absolute offset (filled by Records)
	Timestamp int64  // ms since epoch
	Key       []byte // nil for no key
	Value     []byte // nil is a tombstone
	Headers   []RecordHeader
}

// BuildOptions control batch building.
type BuildOptions struct {
	Compression   int   // CompressionNone, Gzip, Snappy, LZ4, Zstd
	BaseOffset    int64 // usually 0; the log assigns offsets
	ProducerID    int64 // -1 for none
	ProducerEpoch int16 // -1 for none
	BaseSequence  int32 // -1 for none
	LeaderEpoch   int32 // -1 for none

	// KeepOffsets makes Build use each record's Offset (absolute; it must be
	// at least BaseOffset and strictly increasing) instead of numbering the
	// records 0..n-1. Compaction needs it to rewrite a batch with gaps.
	KeepOffsets bool
	// Attributes are extra attribute bits (TransactionalBit, ControlBit,
	// TimestampTypeBit) to set; the compression bits come from Compression.
	Attributes int16
}

// NoProducer is BuildOptions for a batch without idempotence.
var NoProducer = BuildOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, LeaderEpoch: -1}

// minRecordSize is the smallest encoded record: length, attributes,
// timestamp delta, offset delta, key length, value length and header count
// take at least one byte each. It bounds how many records a buffer can hold
// so a lying count cannot make Records allocate more than the bytes allow.
const minRecordSize = 7

// rawBuffers recycle the uncompressed record area Build assembles before
// compressing it.
var rawBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// Build encodes records as one RecordBatch v2 with a valid CRC. Offsets in
// the batch are 0..n-1 relative to opts.BaseOffset; FirstTimestamp and
// MaxTimestamp come from the records.
func Build(records []Record, opts BuildOptions) ([]byte, error) {
	return AppendBuild(nil, records, opts)
}

// AppendBuild is Build appending the batch to dst and returning the
// extended slice, so that a writer building batch after batch can reuse
// one buffer (dst[:0]) instead of allocating each. On error dst is
// returned unchanged.
func AppendBuild(dst []byte, records []Record, opts BuildOptions) ([]byte, error) {
	if len(records) == 0 {
		return dst, errors.New("recordbatch: build: no records")
	}
	if len(records) > math.MaxInt32 {
		return dst, fmt.Errorf("recordbatch: build: %d records", len(records))
	}
	if opts.Compression < CompressionNone || opts.Compression > CompressionZstd {
		return dst, fmt.Errorf("recordbatch: build: unknown codec %d", opts.Compression)
	}
	if opts.Attributes&CompressionMask != 0 {
		return dst, errors.New("recordbatch: build: compression bits in Attributes; use Compression")
	}

	first := records[0].Timestamp
	maxTS := first
	size := 0
	lastDelta := int64(-1)
	for i := range records {
		r := &records[i]
		delta := int64(i)
		if opts.KeepOffsets {
			delta = r.Offset - opts.BaseOffset
			if delta <= lastDelta || delta > math.MaxInt32 {
				return dst, fmt.Errorf("recordbatch: build: record %d offset %d out of order or range for base offset %d", i, r.Offset, opts.BaseOffset)
			}
		}
		lastDelta = delta
		maxTS = max(maxTS, r.Timestamp)
		body := bodySize(r, r.Timestamp-first, int32(delta))
		size += varintSize(int64(body)) + body
		if size > math.MaxInt32-HeaderSize {
			return dst, errors.New("recordbatch: build: batch larger than 2 GiB")
		}
	}

	start := len(dst)
	var out []byte
	if opts.Compression == CompressionNone {
		out = slices.Grow(dst, HeaderSize+size)[:start+HeaderSize]
		out = appendRecords(out, records, opts, first)
	} else {
		bp := rawBuffers.Get().(*[]byte)
		raw := appendRecords((*bp)[:0], records, opts, first)
		// A compressed batch is usually much smaller than its records;
		// start from a guess and let the codec grow it.
		out = slices.Grow(dst, HeaderSize+size/2+64)[:start+HeaderSize]
		var err error
		out, err = appendCompressed(out, opts.Compression, raw)
		if cap(raw) <= 4<<20 { // do not pin huge buffers in the pool
			*bp = raw[:0]
			rawBuffers.Put(bp)
		}
		if err != nil {
			return dst, fmt.Errorf("recordbatch: build: %w", err)
		}
		if len(out)-start > math.MaxInt32 {
			return dst, errors.New("recordbatch: build: compressed batch larger than 2 GiB")
		}
	}

	batch := out[start:]
	h := batch[:HeaderSize]
	binary.BigEndian.PutUint64(h[offBaseOffset:], uint64(opts.BaseOffset))
	binary.BigEndian.PutUint32(h[offLength:], uint32(len(batch)-LogOverhead))
	binary.BigEndian.PutUint32(h[offLeaderEpoch:], uint32(opts.LeaderEpoch))
	h[offMagic] = 2
	binary.BigEndian.PutUint16(h[offAttributes:], uint16(opts.Attributes|int16(opts.Compression)))
	binary.BigEndian.PutUint32(h[offLastOffsetDelta:], uint32(lastDelta))
	binary.BigEndian.PutUint64(h[offFirstTimestamp:], uint64(first))
	binary.BigEndian.PutUint64(h[offMaxTimestamp:], uint64(maxTS))
	binary.BigEndian.PutUint64(h[offProducerID:], uint64(opts.ProducerID))
	binary.BigEndian.PutUint16(h[offProducerEpoch:], uint16(opts.ProducerEpoch))
	binary.BigEndian.PutUint32(h[offBaseSequence:], uint32(opts.BaseSequence))
	binary.BigEndian.PutUint32(h[offNumRecords:], uint32(len(records)))
	SetCRC(batch)
	return out, nil
}

// varintSize is the length of v as a zig-zag varint.
func varintSize(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

// bytesSize is the encoded size of a varint-length-prefixed byte field,
// where nil is encoded as length -1.
func bytesSize(b []byte) int {
	if b == nil {
		return 1
	}
	return varintSize(int64(len(b))) + len(b)
}

// bodySize is the encoded size of a record after its length prefix.
func bodySize(r *Record, tsDelta int64, offDelta int32) int {
	n := 1 + varintSize(tsDelta) + varintSize(int64(offDelta)) +
		bytesSize(r.Key) + bytesSize(r.Value) + varintSize(int64(len(r.Headers)))
	for _, h := range r.Headers {
		n += varintSize(int64(len(h.Key))) + len(h.Key) + bytesSize(h.Value)
	}
	return n
}

func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	return append(binary.AppendVarint(dst, int64(len(b))), b...)
}

// appendRecords appends the records in the Kafka v2 record format. Kafka's
// varint and varlong are zig-zag varints, which is what encoding/binary's
// Varint functions implement.
func appendRecords(dst []byte, records []Record, opts BuildOptions, first int64) []byte {
	for i := range records {
		r := &records[i]
		delta := int32(i)
		if opts.KeepOffsets {
			delta = int32(r.Offset - opts.BaseOffset)
		}
		tsDelta := r.Timestamp - first
		dst = binary.AppendVarint(dst, int64(bodySize(r, tsDelta, delta)))
		dst = append(dst, 0) // record attributes: unused
		dst = binary.AppendVarint(dst, tsDelta)
		dst = binary.AppendVarint(dst, int64(delta))
		dst = appendBytes(dst, r.Key)
		dst = appendBytes(dst, r.Value)
		dst = binary.AppendVarint(dst, int64(len(r.Headers)))
		for _, h := range r.Headers {
			dst = binary.AppendVarint(dst, int64(len(h.Key)))
			dst = append(dst, h.Key...)
			dst = appendBytes(dst, h.Value)
		}
	}
	return dst
}

// Records decodes (and decompresses) all records of one batch.
//
// The batch's CRC is checked first. The returned keys, values and header
// values share one buffer of their own (never batch itself), so callers may
// reuse batch and keep the records. A batch with the log-append-time
// attribute gives every record the batch's MaxTimestamp, as Kafka does.
func Records(batch []byte) ([]Record, error) {
	h, raw, err := payload(batch)
	if err != nil {
		return nil, err
	}
	if h.Compression() == CompressionNone {
		// Copy once so the records never alias the caller's buffer.
		raw = append([]byte(nil), raw...)
	}
	out := make([]Record, 0, min(int(h.NumRecords), len(raw)/minRecordSize))
	err = walkRecords(h, raw, func(r Record) {
		out = append(out, r)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RecordsFrom calls fn with each record at or after from in b, whole
// batches as a log read returns them (the first may start before from).
// Control batches hold transaction markers, not records, and are stepped
// over. next is the offset after b's last batch, or from when b ends
// before it; on an error, the offset reached so far.
func RecordsFrom(b []byte, from int64, fn func(Record)) (next int64, err error) {
	next = from
	err = Split(b, func(h Header, batch []byte) error {
		if !h.IsControl() {
			recs, err := Records(batch)
			if err != nil {
				return fmt.Errorf("batch at offset %d: %w", h.BaseOffset, err)
			}
			for _, r := range recs {
				if r.Offset >= next {
					fn(r)
				}
			}
		}
		next = max(next, h.NextOffset())
		return nil
	})
	return next, err
}

// payload validates batch and returns its header and uncompressed records.
// For an uncompressed batch the records alias batch.
func payload(batch []byte) (Header, []byte, error) {
	h, err := Validate(batch)
	if err != nil {
		return h, nil, fmt.Errorf("recordbatch: records: %w", err)
	}
	raw := batch[HeaderSize:h.Size()]
	if c := h.Compression(); c != CompressionNone {
		raw, err = Decompress(c, raw)
		if err != nil {
			return h, nil, fmt.Errorf("recordbatch: records: %w", err)
		}
	}
	return h, raw, nil
}

// recordReader walks the record area, turning every malformed field into
// an ErrCorrupt with the byte position.
type recordReader struct {
	b   []byte
	pos int
	err error
}

func (r *recordReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: bad %s at record byte %d", ErrCorrupt, what, r.pos)
	}
}

func (r *recordReader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.pos:])
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.pos += n
	return v
}

// varint32 reads a Kafka varint, which must fit in an int32.
func (r *recordReader) varint32(what string) int32 {
	v := r.varint(what)
	if v < math.MinInt32 || v > math.MaxInt32 {
		r.fail(what)
		return 0
	}
	return int32(v)
}

// bytes reads a length-prefixed field; length -1 is nil. The result is
// capped so appending to it can never overwrite the next field.
func (r *recordReader) bytes(what string, nullable bool) []byte {
	// what is only turned into an error message on failure: building it
	// up front would cost an allocation per field.
	n := r.varint32(what)
	if r.err != nil {
		return nil
	}
	if n == -1 && nullable {
		return nil
	}
	if n < 0 || int(n) > len(r.b)-r.pos {
		r.fail(what)
		return nil
	}
	b := r.b[r.pos : r.pos+int(n) : r.pos+int(n)]
	r.pos += int(n)
	return b
}

// walkRecords decodes h.NumRecords records from raw and calls fn with each;
// a nil fn only checks the records, without allocating.
// It demands that every record's length matches its fields and that no
// bytes are left over, as the Java client does.
func walkRecords(h Header, raw []byte, fn func(Record)) error {
	rd := recordReader{b: raw}
	logAppend := h.Attributes&TimestampTypeBit != 0
	for i := int32(0); i < h.NumRecords; i++ {
		if rd.pos >= len(raw) {
			return fmt.Errorf("%w: batch says %d records, bytes end after %d", ErrCorrupt, h.NumRecords, i)
		}
		length := rd.varint32("record length")
		if rd.err != nil {
			return rd.err
		}
		start := rd.pos
		if length < 0 || int(length) > len(raw)-start {
			return fmt.Errorf("%w: record %d length %d with %d bytes left", ErrCorrupt, i, length, len(raw)-start)
		}
		// Fields of this record must not run into the next one.
		rd.b = raw[:start+int(length)]
		if rd.pos >= len(rd.b) {
			rd.fail("record attributes")
			return rd.err
		}
		rd.pos++ // record attributes: unused by Kafka
		tsDelta := rd.varint("timestamp delta")
		offDelta := rd.varint32("offset delta")
		var rec Record
		rec.Key = rd.bytes("key length", true)
		rec.Value = rd.bytes("value length", true)
		nh := rd.varint32("header count")
		if rd.err != nil {
			return rd.err
		}
		// Each header needs at least two bytes (key and value lengths).
		if nh < 0 || int(nh) > (len(rd.b)-rd.pos)/2 {
			rd.fail("header count")
			return rd.err
		}
		if nh > 0 && fn != nil {
			rec.Headers = make([]RecordHeader, nh)
		}
		for j := 0; j < int(nh); j++ {
			k := rd.bytes("header key length", false)
			v := rd.bytes("header value length", true)
			if fn != nil {
				rec.Headers[j] = RecordHeader{Key: string(k), Value: v}
			}
		}
		if rd.err != nil {
			return rd.err
		}
		if rd.pos != start+int(length) {
			return fmt.Errorf("%w: record %d declares %d bytes, fields use %d", ErrCorrupt, i, length, rd.pos-start)
		}
		rd.b = raw
		rec.Offset = h.BaseOffset + int64(offDelta)
		rec.Timestamp = h.FirstTimestamp + tsDelta
		if logAppend {
			rec.Timestamp = h.MaxTimestamp
		}
		if fn != nil {
			fn(rec)
		}
	}
	if rd.pos != len(raw) {
		return fmt.Errorf("%w: %d bytes after the last of %d records", ErrCorrupt, len(raw)-rd.pos, h.NumRecords)
	}
	return nil
}

// Recompress re-encodes batch with codec. The record bytes stay exactly as
// they were (offsets, timestamps, keys, headers); the header keeps base
// offset, leader epoch, producer fields, timestamps and the other attribute
// bits, and gets a new length and CRC. The result is a new slice; batch is
// not modified.
func Recompress(batch []byte, codec int) ([]byte, error) {
	if codec < CompressionNone || codec > CompressionZstd {
		return nil, fmt.Errorf("recordbatch: recompress: unknown codec %d", codec)
	}
	h, raw, err := payload(batch)
	if err != nil {
		return nil, fmt.Errorf("recordbatch: recompress: %w", err)
	}
	// Check the records decode before shipping them anywhere: a batch
	// whose compressed form was corrupt but CRC-valid stops here.
	if err := walkRecords(h, raw, nil); err != nil {
		return nil, fmt.Errorf("recordbatch: recompress: %w", err)
	}
	out := make([]byte, HeaderSize, HeaderSize+len(raw)/2+64)
	copy(out, batch[:HeaderSize])
	if out, err = appendCompressed(out, codec, raw); err != nil {
		return nil, fmt.Errorf("recordbatch: recompress: %w", err)
	}
	if len(out)-LogOverhead > math.MaxInt32 {
		return nil, errors.New("recordbatch: recompress: batch larger than 2 GiB")
	}
	binary.BigEndian.PutUint32(out[offLength:], uint32(len(out)-LogOverhead))
	attrs := h.Attributes&^CompressionMask | int16(codec)
	binary.BigEndian.PutUint16(out[offAttributes:], uint16(attrs))
	SetCRC(out)
	return out, nil
}
