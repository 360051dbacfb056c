package reading

import (
	"fmt"
	"math"
	"strings"
)

// senmlRecord is one SenML record (RFC 8428) with the fields our packs use.
// CBOR uses the RFC's integer labels, JSON its short names.
type senmlRecord struct {
	BaseName  string   `cbor:"-2,keyasint,omitempty" json:"bn,omitempty"`
	BaseTime  float64  `cbor:"-3,keyasint,omitempty" json:"bt,omitempty"`
	BaseUnit  string   `cbor:"-4,keyasint,omitempty" json:"bu,omitempty"`
	BaseValue float64  `cbor:"-5,keyasint,omitempty" json:"bv,omitempty"`
	Name      string   `cbor:"0,keyasint,omitempty" json:"n,omitempty"`
	Unit      string   `cbor:"1,keyasint,omitempty" json:"u,omitempty"`
	Value     *float64 `cbor:"2,keyasint,omitempty" json:"v,omitempty"`
	String    *string  `cbor:"3,keyasint,omitempty" json:"vs,omitempty"`
	Bool      *bool    `cbor:"4,keyasint,omitempty" json:"vb,omitempty"`
	Sum       *float64 `cbor:"5,keyasint,omitempty" json:"s,omitempty"`
	Time      float64  `cbor:"6,keyasint,omitempty" json:"t,omitempty"`
	Update    float64  `cbor:"7,keyasint,omitempty" json:"ut,omitempty"`
}

// senmlPrefix starts every base name: "urn:dev:<device>:".
const senmlPrefix = "urn:dev:"

// maxExactSeq is the largest seq a SenML float value carries exactly.
const maxExactSeq = 1 << 53

func toSenML(r Reading) []senmlRecord {
	f := func(v float64) *float64 { return &v }
	return []senmlRecord{
		{BaseName: senmlPrefix + r.Device + ":", BaseTime: float64(r.TsMs) / 1000, Name: "temp", Unit: "Cel", Value: f(r.Temp)},
		{Name: "hum", Unit: "%RH", Value: f(r.Hum)},
		{Name: "vib", Unit: "m/s2", Value: f(r.Vib)},
		{Name: "seq", Value: f(float64(r.Seq))},
	}
}

// fromSenML resolves a pack the RFC way: base fields carry forward, a
// record's name is base name + name and its time is base time + time.
func fromSenML(pack []senmlRecord) (Reading, error) {
	var (
		r              Reading
		bn             string
		bt, bv         float64
		haveSeq, timed bool
	)
	for i, rec := range pack {
		if rec.BaseName != "" {
			bn = rec.BaseName
		}
		if rec.BaseTime != 0 {
			bt = rec.BaseTime
		}
		if rec.BaseValue != 0 {
			bv = rec.BaseValue
		}
		name := bn + rec.Name
		rest, ok := strings.CutPrefix(name, senmlPrefix)
		if !ok {
			continue // not one of ours; SenML allows foreign records
		}
		dev, field, ok := cutLast(rest, ":")
		if !ok || dev == "" {
			return Reading{}, fmt.Errorf("%w: senml record %d name %q has no device", ErrMalformed, i, name)
		}
		if r.Device != "" && r.Device != dev {
			return Reading{}, fmt.Errorf("%w: senml pack mixes devices %q and %q", ErrMalformed, r.Device, dev)
		}
		r.Device = dev
		if !timed {
			if t := bt + rec.Time; t != 0 {
				r.TsMs = int64(math.Round(t * 1000))
				timed = true
			}
		}
		if rec.Value == nil {
			continue
		}
		v := bv + *rec.Value
		switch field {
		case "temp":
			r.Temp = v
		case "hum":
			r.Hum = v
		case "vib":
			r.Vib = v
		case "seq":
			if v < 0 || v > maxExactSeq || v != math.Trunc(v) {
				return Reading{}, fmt.Errorf("%w: senml seq %v is not a whole number", ErrMalformed, v)
			}
			r.Seq = uint64(v)
			haveSeq = true
		}
	}
	if r.Device == "" || !haveSeq {
		return Reading{}, ErrNotReading
	}
	return r, nil
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}
