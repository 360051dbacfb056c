package stream

import (
	"fmt"
	"math"
	"sort"

	"github.com/DataDog/sketches-go/ddsketch"
	"github.com/DataDog/sketches-go/ddsketch/store"
	"github.com/fxamacker/cbor/v2"
)

// The engine's state as saved in a checkpoint (CBOR). Input offsets are part
// of it, so state and the offsets it covers are always saved together.
type snapshot struct {
	Version  int            `cbor:"1,keyasint"`
	Config   string         `cbor:"2,keyasint"` // fingerprint: a changed config does not resume old state
	Parts    []snapPart     `cbor:"3,keyasint"`
	ClosedTo int64          `cbor:"4,keyasint"`
	Windows  []snapWindow   `cbor:"5,keyasint"`
	Deadband []snapDeadband `cbor:"6,keyasint"`
}

type snapPart struct {
	P     int32 `cbor:"1,keyasint"`
	Next  int64 `cbor:"2,keyasint"`
	MaxTs int64 `cbor:"3,keyasint"`
}

type snapWindow struct {
	Group  string      `cbor:"1,keyasint"`
	Start  int64       `cbor:"2,keyasint"`
	End    int64       `cbor:"3,keyasint"`
	Count  int64       `cbor:"4,keyasint"`
	Fields []snapField `cbor:"5,keyasint"`
}

type snapField struct {
	N       int64    `cbor:"1,keyasint"`
	Sum     float64  `cbor:"2,keyasint"`
	Min     float64  `cbor:"3,keyasint"`
	Max     float64  `cbor:"4,keyasint"`
	First   float64  `cbor:"5,keyasint"`
	FirstAt [3]int64 `cbor:"6,keyasint"`
	Last    float64  `cbor:"7,keyasint"`
	LastAt  [3]int64 `cbor:"8,keyasint"`
	Mean    float64  `cbor:"9,keyasint"`
	M2      float64  `cbor:"10,keyasint"`
	Sketch  []byte   `cbor:"11,keyasint,omitempty"`
}

type snapDeadband struct {
	Group string    `cbor:"1,keyasint"`
	Time  int64     `cbor:"2,keyasint"`
	Vals  []float64 `cbor:"3,keyasint"`
	Set   []bool    `cbor:"4,keyasint"`
}

const snapshotVersion = 1

// snapEnc keeps float64s as float64 (exact round trip).
var snapEnc = func() cbor.EncMode {
	em, err := cbor.EncOptions{Sort: cbor.SortCoreDeterministic, ShortestFloat: cbor.ShortestFloatNone, NaNConvert: cbor.NaNConvertNone, InfConvert: cbor.InfConvertNone}.EncMode()
	if err != nil {
		panic(err) // static options
	}
	return em
}()

var snapDec = func() cbor.DecMode {
	dm, err := cbor.DecOptions{MaxArrayElements: math.MaxInt32, MaxMapPairs: math.MaxInt32, MaxNestedLevels: 16}.DecMode()
	if err != nil {
		panic(err) // static options
	}
	return dm
}()

// fingerprint is what a checkpoint must match to be resumed: everything
// that changes the meaning of the state.
func (e *Engine) fingerprint() string {
	c := e.cfg
	s := fmt.Sprintf("%s|%s|%s|%v|%v|%v|%v", c.Name, c.Source, c.Output, c.Window, c.Deadband, c.Aggregates, c.QuantileAccuracy)
	for _, f := range c.Fields {
		s += "|" + f.Name + "=" + f.Path
	}
	return s + fmt.Sprintf("|%v|%s|%s|%v", *c.GroupBy.Key, c.GroupBy.Field, c.GroupBy.Header, c.Lateness)
}

// Snapshot encodes the engine's state with the input offsets it covers.
func (e *Engine) Snapshot() ([]byte, error) {
	s := snapshot{Version: snapshotVersion, Config: e.fingerprint(), ClosedTo: e.closedTo}
	for p, ps := range e.parts {
		s.Parts = append(s.Parts, snapPart{P: p, Next: ps.next, MaxTs: ps.maxTs})
	}
	sort.Slice(s.Parts, func(i, j int) bool { return s.Parts[i].P < s.Parts[j].P })
	keys := make([]string, 0, len(e.groups))
	for k := range e.groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		g := e.groups[k]
		for _, w := range g.wins {
			sw := snapWindow{Group: w.group, Start: w.start, End: w.end, Count: w.count}
			for i := range w.fields {
				f := &w.fields[i]
				sf := snapField{N: f.n, Sum: f.sum, Min: f.min, Max: f.max, First: f.first, Last: f.last, Mean: f.mean, M2: f.m2,
					FirstAt: [3]int64{f.firstAt.ts, int64(f.firstAt.p), f.firstAt.off},
					LastAt:  [3]int64{f.lastAt.ts, int64(f.lastAt.p), f.lastAt.off}}
				if f.sketch != nil {
					f.sketch.Encode(&sf.Sketch, false)
				}
				sw.Fields = append(sw.Fields, sf)
			}
			s.Windows = append(s.Windows, sw)
		}
		if g.dbHas {
			s.Deadband = append(s.Deadband, snapDeadband{Group: k, Time: g.dbTime, Vals: g.dbVals, Set: g.dbSet})
		}
	}
	b, err := snapEnc.Marshal(&s)
	if err != nil {
		return nil, fmt.Errorf("encode state of %q: %w", e.cfg.Name, err)
	}
	return b, nil
}

// Restore replaces the engine's state with a snapshot taken by an engine of
// the same config. It fails (and leaves the engine empty) on anything else.
func (e *Engine) Restore(b []byte) error {
	var s snapshot
	if err := snapDec.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("decode state of %q: %w", e.cfg.Name, err)
	}
	if s.Version != snapshotVersion {
		return fmt.Errorf("state of %q: version %d, want %d", e.cfg.Name, s.Version, snapshotVersion)
	}
	if s.Config != e.fingerprint() {
		return fmt.Errorf("state of %q was saved by a different configuration (%s); remove the checkpoint to start over", e.cfg.Name, s.Config)
	}
	e.parts = map[int32]*partState{}
	e.groups = map[string]*groupState{}
	e.byEnd = map[int64][]*window{}
	e.ends = nil
	e.open = 0
	e.closedTo = s.ClosedTo
	for _, p := range s.Parts {
		e.parts[p.P] = &partState{next: p.Next, maxTs: p.MaxTs}
	}
	for _, sw := range s.Windows {
		if len(sw.Fields) != len(e.cfg.Fields) {
			return fmt.Errorf("state of %q: window with %d fields, config has %d", e.cfg.Name, len(sw.Fields), len(e.cfg.Fields))
		}
		w := &window{group: sw.Group, start: sw.Start, end: sw.End, count: sw.Count, fields: make([]fieldState, len(sw.Fields))}
		for i, sf := range sw.Fields {
			f := &w.fields[i]
			*f = fieldState{n: sf.N, sum: sf.Sum, min: sf.Min, max: sf.Max, first: sf.First, last: sf.Last, mean: sf.Mean, m2: sf.M2,
				firstAt: pos{ts: sf.FirstAt[0], p: int32(sf.FirstAt[1]), off: sf.FirstAt[2]},
				lastAt:  pos{ts: sf.LastAt[0], p: int32(sf.LastAt[1]), off: sf.LastAt[2]}}
			if len(sf.Sketch) > 0 {
				sk, err := ddsketch.DecodeDDSketch(sf.Sketch, store.DenseStoreConstructor, nil)
				if err != nil {
					return fmt.Errorf("state of %q: sketch of %q: %w", e.cfg.Name, sw.Group, err)
				}
				f.sketch = sk
			}
		}
		g := e.groups[sw.Group]
		if g == nil {
			g = &groupState{}
			e.groups[sw.Group] = g
		}
		g.insert(w)
		e.index(w)
		e.open++
	}
	for _, d := range s.Deadband {
		if len(d.Vals) != len(e.cfg.Fields) || len(d.Set) != len(e.cfg.Fields) {
			return fmt.Errorf("state of %q: deadband of %q has %d fields, config has %d", e.cfg.Name, d.Group, len(d.Vals), len(e.cfg.Fields))
		}
		g := e.groups[d.Group]
		if g == nil {
			g = &groupState{}
			e.groups[d.Group] = g
		}
		g.dbHas, g.dbTime, g.dbVals, g.dbSet = true, d.Time, d.Vals, d.Set
	}
	return nil
}
