package payload

import (
	"bytes"
	"encoding/binary"
	"math"
	"strings"
	"unicode/utf8"
)

// fastCBORReading decodes the common shape of a CBOR reading without
// reflection: one definite-length map of at most MaxMapPairs pairs whose
// keys are distinct text strings and whose values are scalars (integers,
// floats, definite strings, true/false/null/undefined), with device a text
// string, seq an unsigned integer, ts an integer and temp/hum/vib finite
// floats when present, and nothing after the map.
//
// It only ever says yes to payloads that decodeCBORReading's library path
// accepts, with the same Reading (FuzzCBORFastPath checks this); anything
// else — nesting, tags, indefinite lengths, non-text or duplicate keys, a
// key that matches a field only case-insensitively, a known field of an
// unexpected type, an invalid payload — returns ok=false and takes the
// library path, which also words the error.
func fastCBORReading(p []byte) (r Reading, ok bool) {
	if len(p) == 0 || p[0]>>5 != 5 {
		return r, false
	}
	pairs, off, ok := cborHead(p, 0)
	if !ok || pairs > 32 {
		return r, false
	}
	var (
		keys                       [32][2]int // each key's bounds in p
		hasDevice, hasSeq, hasTime bool
	)
	for i := 0; i < int(pairs); i++ {
		// Key: a definite text string, valid UTF-8, not seen before.
		if off >= len(p) || p[off]>>5 != 3 {
			return r, false
		}
		n, next, ok := cborHead(p, off)
		if !ok || uint64(len(p)-next) < n {
			return r, false
		}
		key := p[next : next+int(n)]
		off = next + int(n)
		if !utf8.Valid(key) {
			return r, false
		}
		for _, k := range keys[:i] {
			if bytes.Equal(p[k[0]:k[1]], key) {
				return r, false
			}
		}
		keys[i] = [2]int{next, off}
		field := knownField(key)
		if field < 0 && foldsToField(key) {
			return r, false // the library would match it case-insensitively
		}
		// Value.
		if off >= len(p) {
			return r, false
		}
		major, info := p[off]>>5, p[off]&0x1f
		switch major {
		case 0, 1: // unsigned, negative integer
			v, next, ok := cborHead(p, off)
			if !ok {
				return r, false
			}
			off = next
			switch field {
			case fieldDevice, fieldTemp, fieldHum, fieldVib:
				return r, false
			case fieldSeq:
				if major != 0 {
					return r, false
				}
				r.Seq, hasSeq = v, true
			case fieldTs:
				if v > math.MaxInt64 {
					return r, false
				}
				r.TimeMs, hasTime = int64(v), true
				if major == 1 {
					r.TimeMs = -1 - int64(v)
				}
			}
		case 2, 3: // byte string, text string
			n, next, ok := cborHead(p, off)
			if !ok || uint64(len(p)-next) < n {
				return r, false
			}
			s := p[next : next+int(n)]
			off = next + int(n)
			if major == 3 && !utf8.Valid(s) {
				return r, false
			}
			switch field {
			case fieldDevice:
				if major != 3 || n == 0 {
					return r, false
				}
				r.Device, hasDevice = string(s), true
			case -1:
			default:
				return r, false
			}
		case 7:
			switch info {
			case 20, 21, 22, 23: // false, true, null, undefined
				// A known field refuses booleans, and the library leaves it
				// unset on null/undefined: the library path decides both.
				if field >= 0 {
					return r, false
				}
				off++
				continue
			case 25, 26, 27: // half, single, double precision float
			default:
				return r, false
			}
			bits, next, ok := cborHead(p, off) // the head's argument is the float's bits
			if !ok {
				return r, false
			}
			off = next
			exponent := floatExponent[info-25]
			switch field {
			case fieldTemp, fieldHum, fieldVib:
				if bits&exponent == exponent {
					return r, false // NaN or infinity: the library path words the error
				}
			case -1:
			default:
				return r, false
			}
		default: // arrays, maps, tags
			return r, false
		}
	}
	if off != len(p) || !hasDevice || !hasSeq {
		return Reading{}, false
	}
	r.HasTime = hasTime
	return r, true
}

const (
	fieldDevice = iota
	fieldSeq
	fieldTs
	fieldTemp
	fieldHum
	fieldVib
)

var fieldNames = [...]string{"device", "seq", "ts", "temp", "hum", "vib"}

// floatExponent masks the exponent of a half, single and double precision
// float: all ones is an infinity or a NaN.
var floatExponent = [3]uint64{0x7c00, 0x7f800000, 0x7ff0000000000000}

func knownField(key []byte) int {
	switch string(key) { // no allocation: the compiler compares in place
	case "device":
		return fieldDevice
	case "seq":
		return fieldSeq
	case "ts":
		return fieldTs
	case "temp":
		return fieldTemp
	case "hum":
		return fieldHum
	case "vib":
		return fieldVib
	}
	return -1
}

// foldsToField says whether key equals a field name case-insensitively
// (the library's default matching falls back to that).
func foldsToField(key []byte) bool {
	for _, name := range fieldNames {
		if len(key) == len(name) && strings.EqualFold(string(key), name) {
			return true
		}
	}
	return false
}

// cborHead reads the head of a definite-length item at off (major types
// 0–5): its argument and the offset after the head. Indefinite lengths and
// reserved additional information fail.
func cborHead(p []byte, off int) (arg uint64, next int, ok bool) {
	info := p[off] & 0x1f
	switch {
	case info < 24:
		return uint64(info), off + 1, true
	case info == 24 && len(p)-off >= 2:
		return uint64(p[off+1]), off + 2, true
	case info == 25 && len(p)-off >= 3:
		return uint64(binary.BigEndian.Uint16(p[off+1:])), off + 3, true
	case info == 26 && len(p)-off >= 5:
		return uint64(binary.BigEndian.Uint32(p[off+1:])), off + 5, true
	case info == 27 && len(p)-off >= 9:
		return binary.BigEndian.Uint64(p[off+1:]), off + 9, true
	}
	return 0, off, false
}
