package payload

import (
	"math"
	"strings"
)

// SenML labels (RFC 8428 section 6 gives the CBOR integer labels).
var senmlLabels = map[int64]string{
	-2: "bn", -3: "bt", -4: "bu", -5: "bv", -1: "bver",
	0: "n", 1: "u", 2: "v", 3: "vs", 4: "vb", 5: "s", 6: "t", 7: "ut", 8: "vd",
}

// devicePrefix and deviceSuffix frame the device id in the base name
// ("urn:dev:<device>:").
const (
	devicePrefix = "urn:dev:"
	deviceSuffix = ":"
)

func decodeSenMLCBOR(p []byte) (Reading, error) {
	pack, err := senmlCBORPack(p)
	if err != nil {
		return Reading{}, err
	}
	r, _, err := readingFromSenML(pack, true)
	return r, err
}

func senmlCBORPack(p []byte) ([]map[string]any, error) {
	var raw []map[any]any
	if err := decMode.Unmarshal(p, &raw); err != nil {
		return nil, invalid("senml+cbor: %v", err)
	}
	pack := make([]map[string]any, 0, len(raw))
	for i, rec := range raw {
		m := make(map[string]any, len(rec))
		for k, v := range rec {
			var label int64
			switch x := k.(type) {
			case int64:
				label = x
			case uint64:
				if x > math.MaxInt64 {
					return nil, invalid("senml+cbor: record %d: label %d out of range", i, x)
				}
				label = int64(x)
			default:
				return nil, invalid("senml+cbor: record %d: label of type %T, want integer", i, k)
			}
			name, ok := senmlLabels[label]
			if !ok {
				continue // unknown labels are extensions we do not need
			}
			m[name] = v
		}
		pack = append(pack, m)
	}
	return pack, nil
}

func decodeSenMLJSON(p []byte) (Reading, error) {
	var pack []map[string]any
	if err := strictJSON("senml+json", p, &pack); err != nil {
		return Reading{}, err
	}
	r, _, err := readingFromSenML(pack, true)
	return r, err
}

// DecodeSenML reads any RFC 8428 pack (contentType ContentSenMLJSON or
// ContentSenMLCBOR): the seq record and a urn:dev:<device>: base name are
// optional here (Device is "" without one), as standard packs carry
// neither; hasSeq says whether it held a seq.
func DecodeSenML(contentType string, p []byte) (r Reading, hasSeq bool, err error) {
	var pack []map[string]any
	if contentType == ContentSenMLCBOR {
		if pack, err = senmlCBORPack(p); err != nil {
			return r, false, err
		}
	} else if err = strictJSON("senml+json", p, &pack); err != nil {
		return r, false, err
	}
	return readingFromSenML(pack, false)
}

// readingFromSenML checks a pack: the base name names the device, the
// entries carry seq and the measurements, and bt (+ t of the first record)
// is the device time in seconds. strict is the reading schema (base name
// and seq required); otherwise both are optional.
func readingFromSenML(pack []map[string]any, strict bool) (Reading, bool, error) {
	var r Reading
	if len(pack) == 0 {
		return r, false, invalid("senml: empty pack")
	}
	bn, ok := pack[0]["bn"]
	name, isText := bn.(string)
	switch {
	case ok && !isText:
		return r, false, invalid("senml: base name is not text")
	case ok && strings.HasPrefix(name, devicePrefix) && strings.HasSuffix(name, deviceSuffix) &&
		len(name) > len(devicePrefix)+len(deviceSuffix):
		r.Device = name[len(devicePrefix) : len(name)-len(deviceSuffix)]
	case strict && !ok:
		return r, false, invalid("senml: first record has no base name")
	case strict:
		return r, false, invalid("senml: base name %v is not urn:dev:<device>:", bn)
	}
	var (
		bt, t     float64
		hasBT     bool
		hasSeq    bool
		seenNames = map[string]bool{}
	)
	if v, ok := pack[0]["bt"]; ok {
		f, err := asFloat(v)
		if err != nil {
			return r, false, invalid("senml: bt: %v", err)
		}
		bt, hasBT = f, true
	}
	for i, rec := range pack {
		if i > 0 && strict {
			if _, ok := rec["bn"]; ok {
				return r, false, invalid("senml: record %d changes the base name", i)
			}
		}
		if v, ok := rec["t"]; ok {
			f, err := asFloat(v)
			if err != nil {
				return r, false, invalid("senml: record %d: t: %v", i, err)
			}
			if i == 0 {
				t = f
			}
		}
		n, ok := rec["n"]
		if !ok {
			if i == 0 || !strict {
				continue // base fields only, or the base name names it
			}
			return r, false, invalid("senml: record %d has no name", i)
		}
		ns, ok := n.(string)
		if !ok {
			return r, false, invalid("senml: record %d: name is not text", i)
		}
		if seenNames[ns] && strict {
			return r, false, invalid("senml: record %d: %q repeated", i, ns)
		}
		seenNames[ns] = true
		v, hasV := rec["v"]
		switch ns {
		case "seq":
			if !hasV {
				return r, false, invalid("senml: seq has no numeric value")
			}
			f, err := asFloat(v)
			if err != nil || f < 0 || f != math.Trunc(f) || f > 1<<53 {
				return r, false, invalid("senml: seq %v is not an unsigned integer", v)
			}
			r.Seq, hasSeq = uint64(f), true
		case "temp", "hum", "vib":
			if !hasV {
				return r, false, invalid("senml: %s has no numeric value", ns)
			}
			if _, err := asFloat(v); err != nil {
				return r, false, invalid("senml: %s: %v", ns, err)
			}
		}
	}
	if !hasSeq && strict {
		return r, false, invalid("senml: missing seq")
	}
	if hasBT || t != 0 {
		ms := (bt + t) * 1000
		if ms > math.MaxInt64/2 || ms < math.MinInt64/2 {
			return r, false, invalid("senml: time %v out of range", bt+t)
		}
		r.TimeMs, r.HasTime = int64(math.Round(ms)), true
	}
	return r, hasSeq, nil
}
