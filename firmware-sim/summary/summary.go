// Package summary is the contract between `tributary-sim run` and
// `tributary-sim verify`: what each device generated, what it knows it never
// delivered, and the sequence state that lets a later run continue numbering.
package summary

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"

	"github.com/tributary-io/tributary/internal/atomicfile"
)

// Range is an inclusive span of sequence numbers.
type Range struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// Ranges is a set of sequence numbers kept as sorted, merged spans.
type Ranges []Range

// Add inserts seq, merging with neighbours.
func (rs *Ranges) Add(seq uint64) {
	r := *rs
	// Fast path: sequences mostly arrive ascending.
	if n := len(r); n > 0 && r[n-1].To+1 == seq {
		r[n-1].To = seq
		return
	}
	if n := len(r); n == 0 || r[n-1].To < seq {
		*rs = append(r, Range{seq, seq})
		return
	}
	if r.Contains(seq) {
		return
	}
	r = append(r, Range{seq, seq})
	*rs = normalize(r)
}

func normalize(r Ranges) Ranges {
	slices.SortFunc(r, func(a, b Range) int {
		switch {
		case a.From < b.From:
			return -1
		case a.From > b.From:
			return 1
		}
		return 0
	})
	out := r[:0]
	for _, x := range r {
		if n := len(out); n > 0 && x.From <= out[n-1].To+1 {
			out[n-1].To = max(out[n-1].To, x.To)
			continue
		}
		out = append(out, x)
	}
	return out
}

// Contains reports whether seq is in the set.
func (rs Ranges) Contains(seq uint64) bool {
	i, _ := slices.BinarySearchFunc(rs, seq, func(r Range, s uint64) int {
		switch {
		case r.To < s:
			return -1
		case r.From > s:
			return 1
		}
		return 0
	})
	return i < len(rs) && rs[i].From <= seq && seq <= rs[i].To
}

// Count is how many numbers the set holds.
func (rs Ranges) Count() uint64 {
	var n uint64
	for _, r := range rs {
		n += r.To - r.From + 1
	}
	return n
}

// Device is one device's account of a run.
type Device struct {
	ID string `json:"device"`
	// FirstSeq..NextSeq-1 were generated in this run.
	FirstSeq uint64 `json:"first_seq"`
	NextSeq  uint64 `json:"next_seq"`
	// LastSentSeq and LastAckedSeq are -1 when nothing was sent or acked.
	LastSentSeq  int64  `json:"last_seq_sent"`
	LastAckedSeq int64  `json:"last_seq_acked"`
	Generated    uint64 `json:"generated"`
	Sent         uint64 `json:"sent"`    // distinct readings handed to the network
	Acked        uint64 `json:"acked"`   // PUBACKed (QoS 1) or written (QoS 0)
	Resent       uint64 `json:"resent"`  // re-publishes after a connection loss
	Dropped      uint64 `json:"dropped"` // readings the offline queue discarded
	// Unsent readings were still queued, never published, when the run ended.
	Unsent     uint64 `json:"unsent"`
	BadSent    uint64 `json:"bad_sent"`
	BadDropped uint64 `json:"bad_dropped"`
	Connects   uint64 `json:"connects"`
	// DroppedSeqs never reached an acknowledgement and were given up on, so
	// they may be missing downstream.
	DroppedSeqs Ranges `json:"dropped_seqs,omitempty"`
	// UnackedSeqs were published but not acknowledged when the run ended:
	// each may or may not have arrived.
	UnackedSeqs Ranges `json:"unacked_seqs,omitempty"`
}

// Required reports whether seq must be present downstream: generated in this
// run and neither dropped nor left unacknowledged.
func (d *Device) Required(seq uint64) bool {
	return seq >= d.FirstSeq && seq < d.NextSeq && !d.DroppedSeqs.Contains(seq) && !d.UnackedSeqs.Contains(seq)
}

// RequiredCount is how many of the device's readings must be present.
func (d *Device) RequiredCount() uint64 {
	return d.NextSeq - d.FirstSeq - d.DroppedSeqs.Count() - d.UnackedSeqs.Count()
}

// Summary is a whole run.
type Summary struct {
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Broker   string    `json:"broker"`
	Stream   string    `json:"stream"`
	Encoding string    `json:"encoding"`
	QoS      byte      `json:"qos"`
	Seed     int64     `json:"seed"`
	Totals   Totals    `json:"totals"`
	Devices  []Device  `json:"devices"`
}

// Totals adds up the devices.
type Totals struct {
	Devices   int    `json:"devices"`
	Generated uint64 `json:"generated"`
	Sent      uint64 `json:"sent"`
	Acked     uint64 `json:"acked"`
	Resent    uint64 `json:"resent"`
	Dropped   uint64 `json:"dropped"`
	Unacked   uint64 `json:"unacked"`
	Unsent    uint64 `json:"unsent"`
	Required  uint64 `json:"required"`
	BadSent   uint64 `json:"bad_sent"`
}

// Total recomputes s.Totals from s.Devices.
func (s *Summary) Total() {
	t := Totals{Devices: len(s.Devices)}
	for i := range s.Devices {
		d := &s.Devices[i]
		t.Generated += d.Generated
		t.Sent += d.Sent
		t.Acked += d.Acked
		t.Resent += d.Resent
		t.Dropped += d.Dropped
		t.Unacked += d.UnackedSeqs.Count()
		t.Unsent += d.Unsent
		t.Required += d.RequiredCount()
		t.BadSent += d.BadSent
	}
	s.Totals = t
}

// Write saves s as indented JSON, atomically.
func (s *Summary) Write(path string) error {
	return writeJSON(path, s)
}

// Read loads a summary file.
func Read(path string) (*Summary, error) {
	var s Summary
	if err := readJSON(path, &s); err != nil {
		return nil, err
	}
	for i := range s.Devices {
		// Hand-edited files may be unsorted; lookups need sorted spans.
		s.Devices[i].DroppedSeqs = normalize(s.Devices[i].DroppedSeqs)
		s.Devices[i].UnackedSeqs = normalize(s.Devices[i].UnackedSeqs)
	}
	return &s, nil
}

// State maps device id to the next sequence number it will use.
type State struct {
	Next map[string]uint64 `json:"next_seq"`
}

// ReadState loads a state file; a missing file is an empty state.
func ReadState(path string) (*State, error) {
	st := &State{Next: map[string]uint64{}}
	if err := readJSON(path, st); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return &State{Next: map[string]uint64{}}, nil
		}
		return nil, err
	}
	if st.Next == nil {
		st.Next = map[string]uint64{}
	}
	return st, nil
}

// Write saves the state atomically.
func (st *State) Write(path string) error { return writeJSON(path, st) }

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}

// writeJSON writes v as indented JSON with atomicfile, so a crash leaves
// either the old file or the new one, never half of one.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return atomicfile.Write(path, append(b, '\n'), 0o600)
}
