package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tributary-io/tributary/internal/tick"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// ErrCorrupt is wrapped by every CorruptError.
var ErrCorrupt = errors.New("storage: corrupt batch on disk")

// Damage is a range of a log that cannot be read: a batch whose CRC or
// header no longer checks out (bit rot, a bad sector, a stray write) found
// by a read or by the scrubber. Offsets [From, To) are lost from this copy
// of the log; the segment and byte position say where to look.
type Damage struct {
	Segment  string    `json:"segment"`
	Position int64     `json:"position"`
	From     int64     `json:"from_offset"`
	To       int64     `json:"to_offset"`
	Reason   string    `json:"reason"`
	Found    time.Time `json:"found"`
}

// CorruptError is what Read returns at a damaged range: the caller learns
// which offsets to give up on (a bridge declares them lost, a follower
// fetches them again, a broker answers CORRUPT_MESSAGE).
type CorruptError struct {
	Damage
	Err error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("storage: corrupt batch in %s at byte %d (offsets %d to %d unreadable): %v",
		e.Segment, e.Position, e.From, e.To-1, e.Err)
}

// Unwrap gives errors.Is both ErrCorrupt and the batch's own error.
func (e *CorruptError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// badBatch is a segment read that hit a batch failing its checks at pos.
type badBatch struct {
	pos int64
	err error
}

func (b *badBatch) Error() string { return fmt.Sprintf("bad batch at %d: %v", b.pos, b.err) }

// damaged records (once) and returns the damage a read of offset from hit
// at byte pos of s. The damage ends where the next batch that validates
// begins, or with the segment. mu is held for reading.
func (l *Log) damaged(s *segment, from, pos int64, why error) error {
	to := s.next
	if s == l.active() {
		to = l.next
	}
	if next, ok := s.resync(pos, from); ok {
		to = next
	}
	d := Damage{Segment: s.path, Position: pos, From: from, To: max(to, from+1), Reason: why.Error(), Found: time.Now()}
	return &CorruptError{Damage: l.noteDamage(d), Err: why}
}

// noteDamage adds d unless a known damage already covers its first offset
// (then that one is returned), logging each new one as an ERROR.
func (l *Log) noteDamage(d Damage) Damage {
	l.damageMu.Lock()
	defer l.damageMu.Unlock()
	for _, k := range l.damage {
		if d.From >= k.From && d.From < k.To {
			return k
		}
	}
	l.damage = append(l.damage, d)
	l.logger.Error("corrupt batch on disk: these offsets cannot be read from this copy of the log",
		"segment", d.Segment, "position", d.Position, "from_offset", d.From, "to_offset", d.To, "reason", d.Reason)
	return d
}

// Damage lists the damaged ranges still inside the log (a range leaves the
// list when retention or truncation removes its segment).
func (l *Log) Damage() []Damage {
	start, next := l.StartOffset(), l.NextOffset()
	l.damageMu.Lock()
	defer l.damageMu.Unlock()
	kept := l.damage[:0]
	for _, d := range l.damage {
		if d.To > start && d.From < next {
			kept = append(kept, d)
		}
	}
	l.damage = kept
	return append([]Damage(nil), kept...)
}

// RetentionFloor is the floor set by SetRetentionFloor (math.MaxInt64 when
// none is held): the edge's bridge keeps it at its cursor, so a damage below
// it has been dealt with by the bridge.
func (l *Log) RetentionFloor() int64 { return l.floor.Load() }

// resync finds the first batch after byte pos that validates and holds
// offsets above from, returning its base offset.
func (s *segment) resync(pos, from int64) (int64, bool) {
	rest := min(s.size-pos, maxResyncBytes)
	if rest <= recordbatch.HeaderSize {
		return 0, false
	}
	tail := make([]byte, rest)
	if _, err := s.f.ReadAt(tail, pos); err != nil && !errors.Is(err, io.EOF) {
		return 0, false
	}
	for i := 1; i+recordbatch.HeaderSize <= len(tail); i++ {
		if tail[i+16] != 2 { // magic
			continue
		}
		if h, err := recordbatch.Validate(tail[i:]); err == nil && h.BaseOffset > from {
			return h.BaseOffset, true
		}
	}
	return 0, false
}

// VerifySealed re-reads every sealed segment and checks every batch's CRC
// and offset order, one segment at a time (appends wait only for the segment
// being read). Open trusts sealed segments whose indexes check out, so this
// is the scrub that finds bit rot in old data. Damage is recorded (Damage)
// and logged, and the first one found is returned; the log stays writable,
// and reads of the damaged range return a CorruptError.
func (l *Log) VerifySealed() error {
	return l.verifySealed(context.Background(), nil)
}

// verifySealed is VerifySealed with a pace: wait (if set) is called with the
// bytes of each segment checked and may block, or end the scrub by
// returning an error.
func (l *Log) verifySealed(ctx context.Context, wait func(ctx context.Context, n int64) error) error {
	l.mu.RLock()
	segs := append([]*segment(nil), l.segments...)
	l.mu.RUnlock()
	var first error
	for _, s := range segs[:max(len(segs)-1, 0)] {
		l.mu.RLock()
		if l.closed || s.f == nil {
			l.mu.RUnlock()
			return first
		}
		probe := &segment{base: s.base, path: s.path, f: s.f, next: s.base, maxTS: -1, indexEvery: s.indexEvery, dense: s.dense}
		res, err := probe.scan()
		if err == nil && (res.badErr != nil || probe.size != s.size) {
			why := res.badErr
			if why == nil {
				why = fmt.Errorf("segment holds %d valid bytes, expected %d", probe.size, s.size)
			}
			err = l.damaged(s, probe.next, res.validEnd, why)
		}
		l.mu.RUnlock()
		if err != nil && first == nil {
			first = fmt.Errorf("verify %s: %w", s.path, err)
		}
		if wait != nil {
			if werr := wait(ctx, s.size); werr != nil {
				return first
			}
		}
	}
	return first
}

// ScrubConfig paces the background scrub (Topics.Scrub).
type ScrubConfig struct {
	// Disabled turns the scrub off.
	Disabled bool `yaml:"disabled"`
	// Interval is how often a full pass over every sealed segment starts
	// (at most; a slow pass starts the next when it ends).
	Interval time.Duration `yaml:"interval"`
	// BytesPerSec caps the scrub's reads, so it never competes with
	// ingest for an SD card or a busy disk.
	BytesPerSec int64 `yaml:"bytes_per_sec"`
}

// WithDefaults fills zero fields: a pass every 6 h at 4 MiB/s.
func (c ScrubConfig) WithDefaults() ScrubConfig {
	if c.Interval <= 0 {
		c.Interval = 6 * time.Hour
	}
	if c.BytesPerSec <= 0 {
		c.BytesPerSec = 4 << 20
	}
	return c
}

// Scrub verifies every sealed segment of every log in a loop until ctx
// ends, paced by cfg. Damage it finds is recorded on its log (Log.Damage)
// and logged as an ERROR.
func (t *Topics) Scrub(ctx context.Context, cfg ScrubConfig) {
	if cfg.Disabled {
		return
	}
	cfg = cfg.WithDefaults()
	bytesPerSec, every := cfg.BytesPerSec, cfg.Interval
	pace := func(ctx context.Context, n int64) error {
		if !tick.Sleep(ctx, time.Duration(float64(n)/float64(bytesPerSec)*float64(time.Second))) {
			return ctx.Err()
		}
		return nil
	}
	for {
		started := time.Now()
		for _, l := range t.Logs() {
			if ctx.Err() != nil {
				return
			}
			_ = l.verifySealed(ctx, pace) // damage is recorded and logged by the log
		}
		if !tick.Sleep(ctx, max(every-time.Since(started), 10*time.Millisecond)) {
			return
		}
	}
}

// DamagedRanges counts the damaged ranges of every log (a gauge for both
// tiers' /metrics).
func (t *Topics) DamagedRanges() int {
	n := 0
	for _, l := range t.Logs() {
		n += len(l.Damage())
	}
	return n
}
