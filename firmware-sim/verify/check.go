// Package verify is the end-to-end judge: it compares the readings a
// stream actually holds with what firmware-sim's devices generated and
// reports, per device, what was lost, duplicated or reordered. The judging
// itself (Checker) is a pure function of a sequence of observations; the
// Kafka and edge-log readers only feed it.
package verify

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/tributary-io/tributary/firmware-sim/summary"
)

// Observation is one reading found in the stream.
type Observation struct {
	Device    string
	Seq       uint64
	Partition int32
	Offset    int64
}

// maxSamples bounds the example observations kept per device and kind.
const maxSamples = 5

// Checker accumulates observations. Without a summary it judges each
// device against the span of sequence numbers it has seen.
type Checker struct {
	expected map[string]*summary.Device // nil: no summary
	devices  map[string]*deviceState
	// missing counts required readings not yet seen (summary mode).
	missing uint64

	// Records that were not numbered readings, by reason.
	Undecodable uint64 // payload does not decode
	NotReadings uint64 // decodes, but has no device or seq (injected bad traffic)
	KeyMismatch uint64 // record key differs from the payload's device
}

type deviceState struct {
	seen        summary.Ranges  // distinct seqs received (in the judged span)
	last        map[int32]int64 // last seq per partition, for ordering
	received    uint64          // judged records, duplicates included
	duplicates  uint64
	outOfOrder  uint64
	earlier     uint64 // seq below the run's first: an earlier run's reading
	beyond      uint64 // seq at or past the run's next: a later run's reading
	dupSamples  []Observation
	oooSamples  []Observation
	lo, hi      uint64 // seen span (no-summary mode)
	partitions  []int32
	anyInWindow bool
}

// NewChecker judges against a run summary; pass nil to judge contiguity
// only (every device's readings from its lowest seq seen to its highest).
func NewChecker(s *summary.Summary) *Checker {
	c := &Checker{devices: map[string]*deviceState{}}
	if s != nil {
		c.expected = make(map[string]*summary.Device, len(s.Devices))
		for i := range s.Devices {
			d := &s.Devices[i]
			c.expected[d.ID] = d
			c.missing += d.RequiredCount()
		}
	}
	return c
}

// Complete reports whether every required reading has been seen (always
// false without a summary, which has no totals to reach).
func (c *Checker) Complete() bool { return c.expected != nil && c.missing == 0 }

// Missing is how many required readings are still unseen.
func (c *Checker) Missing() uint64 { return c.missing }

// Observe records one reading.
func (c *Checker) Observe(o Observation) {
	st := c.devices[o.Device]
	if st == nil {
		st = &deviceState{last: map[int32]int64{}}
		c.devices[o.Device] = st
	}
	if !slices.Contains(st.partitions, o.Partition) {
		st.partitions = append(st.partitions, o.Partition)
	}
	if exp := c.expected[o.Device]; exp != nil {
		switch {
		case o.Seq < exp.FirstSeq:
			st.earlier++
			return
		case o.Seq >= exp.NextSeq:
			st.beyond++
			return
		}
	}
	st.received++
	if st.seen.Contains(o.Seq) {
		st.duplicates++
		if len(st.dupSamples) < maxSamples {
			st.dupSamples = append(st.dupSamples, o)
		}
		return
	}
	if last, ok := st.last[o.Partition]; ok && int64(o.Seq) < last {
		st.outOfOrder++
		if len(st.oooSamples) < maxSamples {
			st.oooSamples = append(st.oooSamples, o)
		}
	}
	st.last[o.Partition] = max(st.last[o.Partition], int64(o.Seq))
	st.seen.Add(o.Seq)
	if !st.anyInWindow {
		st.lo, st.hi, st.anyInWindow = o.Seq, o.Seq, true
	}
	st.lo, st.hi = min(st.lo, o.Seq), max(st.hi, o.Seq)
	if exp := c.expected[o.Device]; exp != nil && exp.Required(o.Seq) {
		c.missing--
	}
}

// DeviceReport is the verdict on one device.
type DeviceReport struct {
	Device     string         `json:"device"`
	Expected   uint64         `json:"expected"` // required readings
	Received   uint64         `json:"received"` // records of this run, duplicates included
	Distinct   uint64         `json:"distinct"`
	Lost       uint64         `json:"lost"`
	LostSeqs   summary.Ranges `json:"lost_seqs,omitempty"`
	Duplicated uint64         `json:"duplicated"`
	OutOfOrder uint64         `json:"out_of_order"`
	Earlier    uint64         `json:"earlier_runs,omitempty"`
	Later      uint64         `json:"later_runs,omitempty"`
	Unexpected bool           `json:"unexpected_device,omitempty"` // not in the summary
	Partitions []int32        `json:"partitions,omitempty"`
	Duplicates []Observation  `json:"duplicate_samples,omitempty"`
	Reordered  []Observation  `json:"out_of_order_samples,omitempty"`
}

// Report is the whole verdict.
type Report struct {
	Devices     []DeviceReport `json:"devices"`
	Expected    uint64         `json:"expected"`
	Received    uint64         `json:"received"`
	Lost        uint64         `json:"lost"`
	Duplicated  uint64         `json:"duplicated"`
	OutOfOrder  uint64         `json:"out_of_order"`
	Later       uint64         `json:"later_runs"`
	Earlier     uint64         `json:"earlier_runs"`
	Unexpected  int            `json:"unexpected_devices"`
	Undecodable uint64         `json:"undecodable"`
	NotReadings uint64         `json:"not_readings"`
	KeyMismatch uint64         `json:"key_mismatch"`
}

// Report computes the verdict from everything observed so far.
func (c *Checker) Report() Report {
	r := Report{Undecodable: c.Undecodable, NotReadings: c.NotReadings, KeyMismatch: c.KeyMismatch}
	names := map[string]bool{}
	for n := range c.devices {
		names[n] = true
	}
	for n := range c.expected {
		names[n] = true
	}
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for n := range names {
			if !yield(n) {
				return
			}
		}
	}) {
		d := c.deviceReport(n)
		r.Devices = append(r.Devices, d)
		if d.Unexpected {
			// Another run's device (or a stranger): shown, not judged.
			r.Unexpected++
			continue
		}
		r.Expected += d.Expected
		r.Received += d.Received
		r.Lost += d.Lost
		r.Duplicated += d.Duplicated
		r.OutOfOrder += d.OutOfOrder
		r.Later += d.Later
		r.Earlier += d.Earlier
	}
	return r
}

func (c *Checker) deviceReport(name string) DeviceReport {
	st := c.devices[name]
	if st == nil {
		st = &deviceState{}
	}
	d := DeviceReport{Device: name, Received: st.received, Distinct: st.seen.Count(),
		Duplicated: st.duplicates, OutOfOrder: st.outOfOrder, Earlier: st.earlier, Later: st.beyond,
		Partitions: slices.Sorted(slices.Values(st.partitions)), Duplicates: st.dupSamples, Reordered: st.oooSamples}
	exp := c.expected[name]
	switch {
	case exp != nil:
		d.Expected = exp.RequiredCount()
		d.LostSeqs = missingFrom(st.seen, exp)
		d.Lost = d.LostSeqs.Count()
	case c.expected != nil:
		d.Unexpected = true
	}
	if exp == nil && st.anyInWindow {
		d.Expected = st.hi - st.lo + 1
		d.LostSeqs = gaps(st.seen)
		d.Lost = d.LostSeqs.Count()
	}
	return d
}

// missingFrom lists required seqs of exp that are not in seen.
func missingFrom(seen summary.Ranges, exp *summary.Device) summary.Ranges {
	var lost summary.Ranges
	// Walk the run's span in pieces between seen spans; per-seq checks
	// only happen inside gaps, which are small unless much was lost.
	next := exp.FirstSeq
	emit := func(from, to uint64) { // [from, to)
		for s := from; s < to; s++ {
			if exp.Required(s) {
				lost.Add(s)
			}
		}
	}
	for _, r := range seen {
		if r.From > next {
			emit(next, min(r.From, exp.NextSeq))
		}
		next = max(next, r.To+1)
	}
	if next < exp.NextSeq {
		emit(next, exp.NextSeq)
	}
	return lost
}

// gaps lists the holes between the seen spans.
func gaps(seen summary.Ranges) summary.Ranges {
	var g summary.Ranges
	for i := 1; i < len(seen); i++ {
		g = append(g, summary.Range{From: seen[i-1].To + 1, To: seen[i].From - 1})
	}
	return g
}

// Verdict says whether the report passes. Loss fails unless allowLoss
// (QoS 0 runs); duplicates always fail; reordering fails only if strictOrder.
// Readings numbered before or after the run belong to other runs of the
// same devices (--state continues numbering) and are only counted.
func (r Report) Verdict(allowLoss, strictOrder bool) error {
	var bad []string
	if r.Lost > 0 && !allowLoss {
		bad = append(bad, fmt.Sprintf("%d lost", r.Lost))
	}
	if r.Duplicated > 0 {
		bad = append(bad, fmt.Sprintf("%d duplicated", r.Duplicated))
	}
	if r.OutOfOrder > 0 && strictOrder {
		bad = append(bad, fmt.Sprintf("%d out of order", r.OutOfOrder))
	}
	if len(bad) > 0 {
		return fmt.Errorf("verify failed: %s", strings.Join(bad, ", "))
	}
	return nil
}

// Print writes a human-readable report: a line per device with a problem
// (every device if all is true) and the totals.
func (r Report) Print(w io.Writer, all bool) {
	for _, d := range r.Devices {
		// Devices outside the summary (other fleets) are only counted, unless all.
		problem := !d.Unexpected && (d.Lost > 0 || d.Duplicated > 0 || d.OutOfOrder > 0 || len(d.Partitions) > 1)
		if !problem && !all {
			continue
		}
		fmt.Fprintf(w, "%-20s expected %6d received %6d lost %5d dup %5d ooo %5d", d.Device, d.Expected, d.Received, d.Lost, d.Duplicated, d.OutOfOrder)
		if d.Earlier > 0 {
			fmt.Fprintf(w, " earlier-runs %d", d.Earlier)
		}
		if d.Later > 0 {
			fmt.Fprintf(w, " later-runs %d", d.Later)
		}
		if d.Unexpected {
			fmt.Fprint(w, " (not in summary)")
		}
		if len(d.Partitions) > 1 {
			fmt.Fprintf(w, " partitions %v", d.Partitions)
		}
		if d.Lost > 0 {
			fmt.Fprintf(w, " lost-seqs %s", formatRanges(d.LostSeqs, 8))
		}
		for _, o := range d.Duplicates {
			fmt.Fprintf(w, "\n    duplicate seq %d at partition %d offset %d", o.Seq, o.Partition, o.Offset)
		}
		for _, o := range d.Reordered {
			fmt.Fprintf(w, "\n    out-of-order seq %d at partition %d offset %d", o.Seq, o.Partition, o.Offset)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "devices %d  expected %d  received %d  lost %d  duplicated %d  out-of-order %d  earlier-runs %d  later-runs %d  unexpected-devices %d  undecodable %d  not-readings %d  key-mismatch %d\n",
		len(r.Devices), r.Expected, r.Received, r.Lost, r.Duplicated, r.OutOfOrder, r.Earlier, r.Later, r.Unexpected, r.Undecodable, r.NotReadings, r.KeyMismatch)
}

func formatRanges(rs summary.Ranges, limit int) string {
	var parts []string
	for i, r := range rs {
		if i == limit {
			parts = append(parts, fmt.Sprintf("… (%d more spans)", len(rs)-limit))
			break
		}
		if r.From == r.To {
			parts = append(parts, fmt.Sprint(r.From))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", r.From, r.To))
		}
	}
	return strings.Join(parts, ",")
}
