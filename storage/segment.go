package storage

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tributary-io/tributary/internal/atomicfile"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	// Offset index entry: relative offset uint32, file position uint32.
	indexEntrySize = 8
	// Time index entry: timestamp int64, relative offset uint32.
	timeEntrySize = 12
)

// indexEntry maps the base offset of a batch to its byte position.
type indexEntry struct {
	offset int64
	pos    int64
}

// timeEntry says that batches from offset on have timestamps above the
// running maximum recorded before it: the first batch whose max timestamp
// reached ts starts at offset.
type timeEntry struct {
	ts     int64
	offset int64
}

// segment is one file of batches plus its sparse indexes, kept in memory and
// written beside the log when the segment is sealed.
type segment struct {
	base    int64
	path    string
	f       *os.File
	size    int64
	next    int64 // offset after the last batch
	records int64 // records held (for drop accounting)
	maxTS   int64 // max batch timestamp, -1 when empty
	created time.Time
	// appended is when a batch was last written (the file's modification
	// time for a segment found at open): time retention never removes data
	// appended less than the retention age ago, whatever its timestamps.
	appended time.Time
	sealed   bool
	// dense means batches must follow each other without offset gaps (any
	// log that is not compacted); it lets recovery catch damage to the base
	// offset field, which the CRC does not cover.
	dense bool

	index          []indexEntry
	timeIndex      []timeEntry
	sinceIndex     int   // bytes appended since the last index entry
	indexEvery     int   // IndexIntervalBytes
	lastIndexedPos int64 // position of the last index entry
}

func segmentName(base int64) string { return fmt.Sprintf("%020d", base) }

func parseSegmentName(name string) (int64, bool) {
	if !strings.HasSuffix(name, logSuffix) {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSuffix(name, logSuffix), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// listSegments returns the base offsets of the segment files in dir, sorted.
func listSegments(dir string) ([]int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list segments in %s: %w", dir, err)
	}
	var bases []int64
	for _, e := range entries {
		if base, ok := parseSegmentName(e.Name()); ok && !e.IsDir() {
			bases = append(bases, base)
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	return bases, nil
}

func createSegment(dir string, base int64, indexEvery int, dense bool) (*segment, error) {
	path := filepath.Join(dir, segmentName(base)+logSuffix)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	now := time.Now()
	return &segment{base: base, path: path, f: f, next: base, maxTS: -1, created: now, appended: now, indexEvery: indexEvery, dense: dense}, nil
}

func (s *segment) indexPath() string { return strings.TrimSuffix(s.path, logSuffix) + indexSuffix }
func (s *segment) timeIndexPath() string {
	return strings.TrimSuffix(s.path, logSuffix) + timeIndexSuffix
}

// track records a batch written at pos in the in-memory indexes.
func (s *segment) track(h recordbatch.Header, pos int64) {
	size := h.Size()
	if len(s.index) == 0 || s.sinceIndex >= s.indexEvery {
		s.index = append(s.index, indexEntry{offset: h.BaseOffset, pos: pos})
		s.sinceIndex = 0
		s.lastIndexedPos = pos
	}
	s.sinceIndex += size
	if h.MaxTimestamp > s.maxTS {
		if len(s.timeIndex) == 0 || pos-s.timeIndexPos() >= int64(s.indexEvery) {
			s.timeIndex = append(s.timeIndex, timeEntry{ts: h.MaxTimestamp, offset: h.BaseOffset})
		}
		s.maxTS = h.MaxTimestamp
	}
	s.size = pos + int64(size)
	s.next = h.NextOffset()
	s.records += int64(h.NumRecords)
}

// timeIndexPos is the position of the batch of the last time index entry.
func (s *segment) timeIndexPos() int64 {
	if len(s.timeIndex) == 0 {
		return 0
	}
	return s.lookup(s.timeIndex[len(s.timeIndex)-1].offset)
}

// lookup returns the position of the last indexed batch starting at or before offset.
func (s *segment) lookup(offset int64) int64 {
	i := sort.Search(len(s.index), func(i int) bool { return s.index[i].offset > offset })
	if i == 0 {
		return 0
	}
	return s.index[i-1].pos
}

// readAt reads exactly len(p) bytes at pos.
func (s *segment) readAt(p []byte, pos int64) error {
	_, err := s.f.ReadAt(p, pos)
	if err != nil && !(errors.Is(err, io.EOF)) {
		return fmt.Errorf("read %s at %d: %w", s.path, pos, err)
	}
	if err != nil {
		return fmt.Errorf("read %s at %d: %w", s.path, pos, io.ErrUnexpectedEOF)
	}
	return nil
}

// header reads the batch header at pos.
func (s *segment) header(pos int64) (recordbatch.Header, error) {
	var buf [recordbatch.HeaderSize]byte
	if err := s.readAt(buf[:], pos); err != nil {
		return recordbatch.Header{}, err
	}
	return recordbatch.ParseHeader(buf[:])
}

// find returns the position of the batch holding offset (or the first batch
// after it, when offset falls in a compaction gap), or s.size if none.
func (s *segment) find(offset int64) (int64, error) {
	pos := s.lookup(offset)
	// The sparse index leaves about indexEvery bytes to walk: read them in
	// one go and parse headers in memory rather than a pread per header.
	if window := min(int64(2*s.indexEvery+recordbatch.HeaderSize), s.size-pos); window >= recordbatch.HeaderSize {
		buf := make([]byte, window)
		if err := s.readAt(buf, pos); err != nil {
			return 0, err
		}
		off := 0
		for off+recordbatch.HeaderSize <= len(buf) {
			h, err := recordbatch.ParseHeader(buf[off:])
			if err != nil {
				return 0, fmt.Errorf("segment %s at %d: %w", s.path, pos+int64(off), err)
			}
			if h.LastOffset() >= offset {
				return pos + int64(off), nil
			}
			off += h.Size()
		}
		pos += int64(off)
	}
	for pos < s.size {
		h, err := s.header(pos)
		if err != nil {
			return 0, fmt.Errorf("segment %s at %d: %w", s.path, pos, err)
		}
		if h.LastOffset() >= offset {
			return pos, nil
		}
		pos += int64(h.Size())
	}
	return s.size, nil
}

// scanResult is what a full walk of a segment file found.
type scanResult struct {
	validEnd int64 // bytes of valid batches from the start
	badErr   error // why the batch at validEnd is bad (nil if none)
	// midCorrupt means a valid batch follows the bad one, so this is damage
	// inside the log rather than a torn tail.
	midCorrupt bool
}

// scan reads the whole segment, checking every batch's CRC and that offsets
// increase, and rebuilds the in-memory indexes from what is valid.
func (s *segment) scan() (scanResult, error) {
	st, err := s.f.Stat()
	if err != nil {
		return scanResult{}, fmt.Errorf("stat %s: %w", s.path, err)
	}
	fileSize := st.Size()
	s.index, s.timeIndex = nil, nil
	s.size, s.next, s.records, s.maxTS, s.sinceIndex = 0, s.base, 0, -1, 0

	r := bufio.NewReaderSize(io.NewSectionReader(s.f, 0, fileSize), 1<<20)
	var buf []byte
	var pos int64
	for pos < fileSize {
		if fileSize-pos < recordbatch.HeaderSize {
			return s.bad(pos, fileSize, recordbatch.ErrShort), nil
		}
		prefix, err := r.Peek(recordbatch.LogOverhead)
		if err != nil {
			return scanResult{}, fmt.Errorf("read %s at %d: %w", s.path, pos, err)
		}
		size := int64(binary.BigEndian.Uint32(prefix[8:])) + recordbatch.LogOverhead
		if size < recordbatch.HeaderSize || pos+size > fileSize {
			return s.bad(pos, fileSize, fmt.Errorf("batch of %d bytes at %d in a %d-byte file: %w", size, pos, fileSize, recordbatch.ErrShort)), nil
		}
		if int64(cap(buf)) < size {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(r, buf); err != nil {
			return scanResult{}, fmt.Errorf("read %s at %d: %w", s.path, pos, err)
		}
		h, err := recordbatch.Validate(buf)
		if err == nil {
			err = s.checkNext(h)
		}
		if err != nil {
			return s.bad(pos, fileSize, err), nil
		}
		s.track(h, pos)
		pos += size
	}
	return scanResult{validEnd: pos}, nil
}

// checkNext rejects a batch whose offsets go backwards.
func (s *segment) checkNext(h recordbatch.Header) error {
	if h.BaseOffset < s.next || (s.dense && h.BaseOffset != s.next) {
		return fmt.Errorf("%w: batch base offset %d, expected %d", recordbatch.ErrCorrupt, h.BaseOffset, s.next)
	}
	return nil
}

// maxResyncBytes bounds how far past a bad batch we look for a good one.
const maxResyncBytes = 64 << 20

// bad classifies a bad batch at pos: if any valid batch with a later offset
// follows it, the damage is inside the log (it must not be cut away
// silently); otherwise it is a torn tail.
func (s *segment) bad(pos, fileSize int64, why error) scanResult {
	res := scanResult{validEnd: pos, badErr: why}
	rest := min(fileSize-pos, maxResyncBytes)
	if rest <= recordbatch.HeaderSize {
		return res
	}
	tail := make([]byte, rest)
	if _, err := s.f.ReadAt(tail, pos); err != nil && !errors.Is(err, io.EOF) {
		return res
	}
	for i := 1; i+recordbatch.HeaderSize <= len(tail); i++ {
		if tail[i+16] != 2 { // magic
			continue
		}
		h, err := recordbatch.Validate(tail[i:])
		if err == nil && h.BaseOffset >= s.next {
			res.midCorrupt = true
			return res
		}
	}
	return res
}

// writeIndexes persists the sparse indexes of a sealed segment.
func (s *segment) writeIndexes() error {
	ib := make([]byte, 0, len(s.index)*indexEntrySize)
	for _, e := range s.index {
		ib = binary.BigEndian.AppendUint32(ib, uint32(e.offset-s.base))
		ib = binary.BigEndian.AppendUint32(ib, uint32(e.pos))
	}
	tb := make([]byte, 0, len(s.timeIndex)*timeEntrySize)
	for _, e := range s.timeIndex {
		tb = binary.BigEndian.AppendUint64(tb, uint64(e.ts))
		tb = binary.BigEndian.AppendUint32(tb, uint32(e.offset-s.base))
	}
	if err := atomicfile.Write(s.indexPath(), ib, 0o644); err != nil {
		return err
	}
	return atomicfile.Write(s.timeIndexPath(), tb, 0o644)
}

// loadIndexes reads the persisted indexes of a sealed segment and checks
// them against the file: entries must increase and point inside the file at
// real batch headers, and the last batch must end exactly at the file end.
// Any doubt returns an error and the caller rebuilds by scanning.
func (s *segment) loadIndexes() error {
	st, err := s.f.Stat()
	if err != nil {
		return err
	}
	s.size = st.Size()
	ib, err := os.ReadFile(s.indexPath())
	if err != nil {
		return err
	}
	tb, err := os.ReadFile(s.timeIndexPath())
	if err != nil {
		return err
	}
	if len(ib)%indexEntrySize != 0 || len(tb)%timeEntrySize != 0 || (len(ib) == 0) != (s.size == 0) {
		return errors.New("index size mismatch")
	}
	s.index = s.index[:0]
	for i := 0; i < len(ib); i += indexEntrySize {
		e := indexEntry{offset: s.base + int64(binary.BigEndian.Uint32(ib[i:])), pos: int64(binary.BigEndian.Uint32(ib[i+4:]))}
		if n := len(s.index); (n > 0 && (e.offset <= s.index[n-1].offset || e.pos <= s.index[n-1].pos)) || e.pos >= s.size {
			return errors.New("index entries out of order")
		}
		h, err := s.header(e.pos)
		if err != nil || h.BaseOffset != e.offset {
			return errors.New("index entry does not point at a batch")
		}
		s.index = append(s.index, e)
	}
	s.timeIndex = s.timeIndex[:0]
	for i := 0; i < len(tb); i += timeEntrySize {
		e := timeEntry{ts: int64(binary.BigEndian.Uint64(tb[i:])), offset: s.base + int64(binary.BigEndian.Uint32(tb[i+8:]))}
		if n := len(s.timeIndex); n > 0 && (e.ts <= s.timeIndex[n-1].ts || e.offset <= s.timeIndex[n-1].offset) {
			return errors.New("time index entries out of order")
		}
		s.timeIndex = append(s.timeIndex, e)
	}
	// Walk from the last index entry to the end to learn next offset and
	// record count tail; the rest of the count is unknown without a scan,
	// so records is approximated by the offset span.
	s.next, s.maxTS = s.base, -1
	if len(s.index) > 0 {
		pos := s.index[len(s.index)-1].pos
		for pos < s.size {
			h, err := s.header(pos)
			if err != nil {
				return err
			}
			pos += int64(h.Size())
			if pos > s.size {
				return errors.New("last batch runs past the file end")
			}
			s.next = h.NextOffset()
			s.maxTS = max(s.maxTS, h.MaxTimestamp)
		}
	}
	if n := len(s.timeIndex); n > 0 {
		s.maxTS = max(s.maxTS, s.timeIndex[n-1].ts)
	}
	s.records = s.next - s.base
	s.sealed = true
	return nil
}

func (s *segment) close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

func (s *segment) remove() error {
	s.close()
	var errs []error
	for _, p := range []string{s.path, s.indexPath(), s.timeIndexPath()} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
