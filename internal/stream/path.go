package stream

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/fxamacker/cbor/v2"
)

// This file is the small path extractor the engine reads values with. It
// cannot use edge/payload (internal/ must not depend on edge/), and the hot
// path must not allocate: JSON and CBOR maps are walked in place, without
// decoding the rest of the payload. CBOR the walker does not handle
// (indefinite lengths) and SenML packs go through fxamacker/cbor and
// encoding/json instead; FuzzExtract checks that both ways agree.

// Path addresses a value in a payload: a JSON pointer ("/env/temp",
// "/values/0") or a dotted path ("env.temp", "values.0"); "." is the whole
// payload. Numeric segments index arrays. In a SenML pack the whole path
// string is a record name: it matches bn+n or n.
type Path struct {
	raw  string
	segs []string
}

// ParsePath parses a field path.
func ParsePath(s string) (Path, error) {
	switch {
	case s == "":
		return Path{}, errors.New("empty path")
	case s == ".":
		return Path{raw: s}, nil
	case len(s) > 512:
		return Path{}, errors.New("path longer than 512 bytes")
	case s[0] == '/':
		parts := strings.Split(s[1:], "/")
		for i, p := range parts {
			if strings.Contains(strings.NewReplacer("~0", "", "~1", "").Replace(p), "~") {
				return Path{}, fmt.Errorf("JSON pointer %q: bad escape in %q (~0 or ~1 only)", s, p)
			}
			parts[i] = strings.NewReplacer("~1", "/", "~0", "~").Replace(p)
		}
		return Path{raw: s, segs: parts}, nil
	default:
		parts := strings.Split(s, ".")
		for _, p := range parts {
			if p == "" {
				return Path{}, fmt.Errorf("dotted path %q has an empty segment", s)
			}
		}
		return Path{raw: s, segs: parts}, nil
	}
}

func (p Path) String() string { return p.raw }

// payload formats
type format uint8

const (
	fmtUnknown format = iota
	fmtJSON
	fmtCBOR
	fmtSenMLJSON
	fmtSenMLCBOR
)

func parseFormat(s string) format {
	switch s {
	case "json":
		return fmtJSON
	case "cbor":
		return fmtCBOR
	case "senml+json":
		return fmtSenMLJSON
	case "senml+cbor":
		return fmtSenMLCBOR
	}
	return fmtUnknown
}

// formatOf decides a record's format: the configured one, else its
// content-type header, else a sniff of the first byte.
func formatOf(configured format, contentType []byte, b []byte) format {
	if configured != fmtUnknown {
		return configured
	}
	if len(contentType) > 0 {
		ct := contentType
		if i := bytes.IndexByte(ct, ';'); i >= 0 {
			ct = ct[:i]
		}
		ct = bytes.TrimSpace(ct)
		switch {
		case asciiEqualFold(ct, "application/cbor"):
			return fmtCBOR
		case asciiEqualFold(ct, "application/json"), asciiEqualFold(ct, "text/plain"):
			return fmtJSON
		case asciiEqualFold(ct, "application/senml+json"):
			return fmtSenMLJSON
		case asciiEqualFold(ct, "application/senml+cbor"):
			return fmtSenMLCBOR
		}
	}
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '[':
			return fmtSenMLJSON
		}
		switch {
		case c == '{' || c == '"' || c == '-' || (c >= '0' && c <= '9'):
			return fmtJSON
		case c>>5 == 5: // CBOR map
			return fmtCBOR
		case c>>5 == 4: // CBOR array: a SenML pack
			return fmtSenMLCBOR
		}
		return fmtCBOR
	}
	return fmtJSON
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// Reasons a record (or one of its fields) is skipped; they label the
// skipped-records metric and the side topic's reason header.
const (
	ReasonMissing   = "missing_field"
	ReasonNotNumber = "not_a_number"
	ReasonNonFinite = "non_finite"
	ReasonMalformed = "malformed_payload"
	ReasonTimestamp = "absurd_timestamp"
	ReasonLate      = "late"
)

var (
	errMissing     = errors.New(ReasonMissing)
	errNotNumber   = errors.New(ReasonNotNumber)
	errNonFinite   = errors.New(ReasonNonFinite)
	errMalformed   = errors.New(ReasonMalformed)
	errUnsupported = errors.New("unsupported encoding")
)

// extractNumber reads the number at p. Errors are errMissing, errNotNumber,
// errNonFinite or errMalformed.
func extractNumber(f format, b []byte, p Path) (float64, error) {
	var v float64
	var err error
	switch f {
	case fmtJSON:
		v, err = jsonNumber(b, p.segs)
	case fmtCBOR:
		v, err = cborNumber(b, p.segs)
		if errors.Is(err, errUnsupported) {
			v, err = slowCBORNumber(b, p.segs)
		}
	case fmtSenMLJSON, fmtSenMLCBOR:
		v, err = senmlNumber(f, b, p.raw)
	default:
		err = errMalformed
	}
	if err != nil {
		return 0, err
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, errNonFinite
	}
	return v, nil
}

// appendText appends the value at p as text (a string's contents, a
// number's shortest form) for use in a group key.
func appendText(dst []byte, f format, b []byte, p Path) ([]byte, error) {
	switch f {
	case fmtJSON:
		raw, err := jsonLookup(b, p.segs)
		if err != nil {
			return dst, err
		}
		if len(raw) > 0 && raw[0] == '"' {
			if bytes.IndexByte(raw, '\\') < 0 {
				return append(dst, raw[1:len(raw)-1]...), nil
			}
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return dst, errMalformed
			}
			return append(dst, s...), nil
		}
		if v, err := parseJSONNumber(raw); err == nil {
			return strconv.AppendFloat(dst, v, 'g', -1, 64), nil
		}
		return append(dst, raw...), nil
	case fmtCBOR:
		var v any
		if err := slowDecMode.Unmarshal(b, &v); err != nil {
			return dst, errMalformed
		}
		x, err := walkAny(v, p.segs)
		if err != nil {
			return dst, err
		}
		switch t := x.(type) {
		case string:
			return append(dst, t...), nil
		case []byte:
			return append(dst, t...), nil
		}
		if n, err := anyNumber(x); err == nil {
			return strconv.AppendFloat(dst, n, 'g', -1, 64), nil
		}
		return append(dst, fmt.Sprint(x)...), nil
	}
	return dst, errMissing
}

// --- JSON, walked in place ---

func jsonNumber(b []byte, segs []string) (float64, error) {
	raw, err := jsonLookup(b, segs)
	if err != nil {
		return 0, err
	}
	switch raw[0] {
	case 'n':
		return 0, errMissing // null
	case '"', 't', 'f', '{', '[':
		return 0, errNotNumber
	}
	return parseJSONNumber(raw)
}

func parseJSONNumber(raw []byte) (float64, error) {
	for _, c := range raw {
		if !(c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
			return 0, errNotNumber
		}
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange) {
			return 0, errNonFinite
		}
		return 0, errNotNumber
	}
	return v, nil
}

// jsonLookup returns the raw bytes of the value at segs.
func jsonLookup(b []byte, segs []string) ([]byte, error) {
	i := skipWS(b, 0)
	for _, seg := range segs {
		if i >= len(b) {
			return nil, errMalformed
		}
		switch b[i] {
		case '{':
			j, err := jsonFindKey(b, i+1, seg)
			if err != nil {
				return nil, err
			}
			i = j
		case '[':
			idx, err := strconv.Atoi(seg)
			if err != nil || idx < 0 {
				return nil, errMissing
			}
			j, err := jsonFindIndex(b, i+1, idx)
			if err != nil {
				return nil, err
			}
			i = j
		default:
			return nil, errMissing
		}
	}
	if i >= len(b) {
		return nil, errMalformed
	}
	end, err := jsonSkip(b, i, 0)
	if err != nil {
		return nil, err
	}
	return b[i:end], nil
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// jsonFindKey scans an object's members from i (after '{') and returns the
// start of the value of key, or errMissing. A repeated key's last value
// wins, as with encoding/json.
func jsonFindKey(b []byte, i int, key string) (int, error) {
	found := -1
	i = skipWS(b, i)
	if i < len(b) && b[i] == '}' {
		return 0, errMissing
	}
	for {
		k := skipWS(b, i)
		end, v, err := jsonMemberKey(b, k)
		if err != nil {
			return 0, err
		}
		if jsonKeyEquals(b[k:end], key) {
			found = v
		}
		var last bool
		if i, last, err = jsonNext(b, v, 0, '}'); err != nil {
			return 0, err
		}
		if last {
			if found < 0 {
				return 0, errMissing
			}
			return found, nil
		}
	}
}

func jsonKeyEquals(quoted []byte, key string) bool {
	inner := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner) == key
	}
	var s string
	if json.Unmarshal(quoted, &s) != nil {
		return false
	}
	return s == key
}

func jsonFindIndex(b []byte, i int, idx int) (int, error) {
	i = skipWS(b, i)
	if i < len(b) && b[i] == ']' {
		return 0, errMissing
	}
	for n := 0; ; n++ {
		i = skipWS(b, i)
		if i >= len(b) {
			return 0, errMalformed
		}
		if n == idx {
			return i, nil
		}
		var last bool
		var err error
		if i, last, err = jsonNext(b, i, 0, ']'); err != nil {
			return 0, err
		}
		if last {
			return 0, errMissing
		}
	}
}

// jsonMemberKey reads the object member whose key starts at i: it returns
// the end of the quoted key and where the member's value starts.
func jsonMemberKey(b []byte, i int) (keyEnd, value int, err error) {
	if i >= len(b) || b[i] != '"' {
		return 0, 0, errMalformed
	}
	if keyEnd, err = jsonSkipString(b, i); err != nil {
		return 0, 0, err
	}
	i = skipWS(b, keyEnd)
	if i >= len(b) || b[i] != ':' {
		return 0, 0, errMalformed
	}
	value = skipWS(b, i+1)
	if value >= len(b) {
		return 0, 0, errMalformed
	}
	return keyEnd, value, nil
}

// jsonNext skips the member or element value at i (nested depth deep) and
// what follows it: it returns where the next one starts, or last when
// closer (the container's '}' or ']') comes instead of a comma.
func jsonNext(b []byte, i, depth int, closer byte) (next int, last bool, err error) {
	if i, err = jsonSkip(b, i, depth); err != nil {
		return 0, false, err
	}
	i = skipWS(b, i)
	if i >= len(b) {
		return 0, false, errMalformed
	}
	switch b[i] {
	case ',':
		return i + 1, false, nil
	case closer:
		return i, true, nil
	}
	return 0, false, errMalformed
}

func jsonSkipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, errMalformed
}

const maxDepth = 64

// jsonSkip returns the end of the value starting at i.
func jsonSkip(b []byte, i int, depth int) (int, error) {
	if depth > maxDepth {
		return 0, errMalformed
	}
	switch b[i] {
	case '"':
		return jsonSkipString(b, i)
	case '{', '[':
		closer := byte('}')
		if b[i] == '[' {
			closer = ']'
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == closer {
			return i + 1, nil
		}
		for {
			i = skipWS(b, i)
			if i >= len(b) {
				return 0, errMalformed
			}
			var err error
			if closer == '}' {
				if _, i, err = jsonMemberKey(b, i); err != nil {
					return 0, err
				}
			}
			var last bool
			if i, last, err = jsonNext(b, i, depth+1, closer); err != nil {
				return 0, err
			}
			if last {
				return i + 1, nil
			}
		}
	default:
		j := i
		for j < len(b) {
			c := b[j]
			if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ':' || c == '"' {
				break
			}
			j++
		}
		if j == i {
			return 0, errMalformed
		}
		return j, nil
	}
}

// --- CBOR, walked in place ---

// cborHead reads an item head at i: major type, additional info, argument
// and the index after the head.
func cborHead(b []byte, i int) (major, ai byte, arg uint64, next int, err error) {
	if i >= len(b) {
		return 0, 0, 0, 0, errMalformed
	}
	major, ai = b[i]>>5, b[i]&0x1f
	i++
	switch {
	case ai < 24:
		return major, ai, uint64(ai), i, nil
	case ai == 24:
		if i+1 > len(b) {
			return 0, 0, 0, 0, errMalformed
		}
		return major, ai, uint64(b[i]), i + 1, nil
	case ai == 25:
		if i+2 > len(b) {
			return 0, 0, 0, 0, errMalformed
		}
		return major, ai, uint64(binary.BigEndian.Uint16(b[i:])), i + 2, nil
	case ai == 26:
		if i+4 > len(b) {
			return 0, 0, 0, 0, errMalformed
		}
		return major, ai, uint64(binary.BigEndian.Uint32(b[i:])), i + 4, nil
	case ai == 27:
		if i+8 > len(b) {
			return 0, 0, 0, 0, errMalformed
		}
		return major, ai, binary.BigEndian.Uint64(b[i:]), i + 8, nil
	case ai == 31:
		return 0, 0, 0, 0, errUnsupported // indefinite length or break
	}
	return 0, 0, 0, 0, errMalformed
}

// cborSkip returns the index after the item at i.
func cborSkip(b []byte, i int, depth int) (int, error) {
	if depth > maxDepth {
		return 0, errMalformed
	}
	major, _, arg, i, err := cborHead(b, i)
	if err != nil {
		return 0, err
	}
	switch major {
	case 2, 3:
		if arg > uint64(len(b)-i) {
			return 0, errMalformed
		}
		return i + int(arg), nil
	case 4, 5:
		n := arg
		if major == 5 {
			if n > math.MaxUint64/2 {
				return 0, errMalformed
			}
			n *= 2
		}
		if n > uint64(len(b)-i) { // each item is at least one byte
			return 0, errMalformed
		}
		for k := uint64(0); k < n; k++ {
			if i, err = cborSkip(b, i, depth+1); err != nil {
				return 0, err
			}
		}
		return i, nil
	case 6:
		return cborSkip(b, i, depth+1)
	}
	return i, nil
}

func cborNumber(b []byte, segs []string) (float64, error) {
	i := 0
	for _, seg := range segs {
		j, err := cborStep(b, i, seg)
		if err != nil {
			return 0, err
		}
		i = j
	}
	// Skip to the end first: a truncated or malformed payload is malformed
	// whatever the path points at, as the decoder would say.
	if end, err := cborSkip(b, 0, 0); err != nil {
		return 0, err
	} else if end != len(b) {
		return 0, errMalformed
	}
	for {
		major, ai, arg, next, err := cborHead(b, i)
		if err != nil {
			return 0, err
		}
		switch major {
		case 0:
			return float64(arg), nil
		case 1:
			return -1 - float64(arg), nil
		case 6:
			if arg == 0 || arg == 1 {
				return 0, errNotNumber // a date/time, not a measurement (as the decoder sees it)
			}
			if arg == 2 || arg == 3 { // bignum: a byte string magnitude
				bm, _, blen, bstart, err := cborHead(b, next)
				if err != nil || bm != 2 || blen > uint64(len(b)-bstart) {
					return 0, errNotNumber
				}
				n := new(big.Int).SetBytes(b[bstart : bstart+int(blen)])
				if arg == 3 {
					n.Neg(n).Sub(n, big.NewInt(1))
				}
				f, _ := new(big.Float).SetInt(n).Float64()
				return f, nil
			}
			i = next // another tag: look at the tagged item
			continue
		case 7:
			switch ai {
			case 25:
				return halfToFloat(uint16(arg)), nil
			case 26:
				return float64(math.Float32frombits(uint32(arg))), nil
			case 27:
				return math.Float64frombits(arg), nil
			case 22, 23:
				return 0, errMissing // null, undefined
			}
		}
		return 0, errNotNumber
	}
}

// cborStep moves from the container at i to its member seg.
func cborStep(b []byte, i int, seg string) (int, error) {
	major, _, arg, i, err := cborHead(b, i)
	if err != nil {
		return 0, err
	}
	for major == 6 {
		if major, _, arg, i, err = cborHead(b, i); err != nil {
			return 0, err
		}
	}
	switch major {
	case 5:
		if arg > uint64(len(b)-i) {
			return 0, errMalformed
		}
		var found = -1
		for k := uint64(0); k < arg; k++ {
			kmaj, _, klen, kstart, err := cborHead(b, i)
			if err != nil {
				return 0, err
			}
			var match bool
			if kmaj == 3 {
				if klen > uint64(len(b)-kstart) {
					return 0, errMalformed
				}
				match = string(b[kstart:kstart+int(klen)]) == seg
			}
			if i, err = cborSkip(b, i, 1); err != nil {
				return 0, err
			}
			if match {
				found = i // the last of repeated keys wins, as when decoding
			}
			if i, err = cborSkip(b, i, 1); err != nil {
				return 0, err
			}
		}
		if found < 0 {
			return 0, errMissing
		}
		return found, nil
	case 4:
		idx, err := strconv.ParseUint(seg, 10, 63)
		if err != nil || idx >= arg {
			return 0, errMissing
		}
		if arg > uint64(len(b)-i) {
			return 0, errMalformed
		}
		for k := uint64(0); k < idx; k++ {
			if i, err = cborSkip(b, i, 1); err != nil {
				return 0, err
			}
		}
		return i, nil
	}
	return 0, errMissing
}

func halfToFloat(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(mant, -24)
	case 31:
		if mant == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	}
	return sign * math.Ldexp(mant+1024, exp-25)
}

// --- the decoding path: fxamacker/cbor and encoding/json ---

var slowDecMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		MaxNestedLevels:  maxDepth / 2,
		MaxArrayElements: 65536,
		MaxMapPairs:      65536,
		IndefLength:      cbor.IndefLengthAllowed,
		DupMapKey:        cbor.DupMapKeyQuiet,
		IntDec:           cbor.IntDecConvertNone,
	}.DecMode()
	if err != nil {
		panic(err) // static options
	}
	return dm
}()

func slowCBORNumber(b []byte, segs []string) (float64, error) {
	var v any
	if err := slowDecMode.Unmarshal(b, &v); err != nil {
		return 0, errMalformed
	}
	x, err := walkAny(v, segs)
	if err != nil {
		return 0, err
	}
	return anyNumber(x)
}

func walkAny(v any, segs []string) (any, error) {
	for _, seg := range segs {
		switch t := v.(type) {
		case map[any]any:
			x, ok := t[seg]
			if !ok {
				return nil, errMissing
			}
			v = x
		case map[string]any:
			x, ok := t[seg]
			if !ok {
				return nil, errMissing
			}
			v = x
		case []any:
			idx, err := strconv.Atoi(seg)
			if err != nil || idx < 0 || idx >= len(t) {
				return nil, errMissing
			}
			v = t[idx]
		case cbor.Tag:
			return walkAny(t.Content, []string{seg})
		default:
			return nil, errMissing
		}
	}
	return v, nil
}

func anyNumber(x any) (float64, error) {
	switch t := x.(type) {
	case nil:
		return 0, errMissing
	case uint64:
		return float64(t), nil
	case int64:
		return float64(t), nil
	case float64:
		return t, nil
	case float32:
		return float64(t), nil
	case json.Number:
		return parseJSONNumber([]byte(t))
	case cbor.Tag:
		return anyNumber(t.Content)
	case big.Int:
		f, _ := new(big.Float).SetInt(&t).Float64()
		return f, nil
	case *big.Int:
		f, _ := new(big.Float).SetInt(t).Float64()
		return f, nil
	}
	return 0, errNotNumber
}

// senmlNumber finds the last record of a SenML pack whose name (bn+n, or n
// alone) is name and returns its value (v).
func senmlNumber(f format, b []byte, name string) (float64, error) {
	var recs []map[string]any
	if f == fmtSenMLJSON {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&recs); err != nil {
			return 0, errMalformed
		}
	} else {
		var raw []map[any]any
		if err := slowDecMode.Unmarshal(b, &raw); err != nil {
			return 0, errMalformed
		}
		labels := map[int64]string{-2: "bn", 0: "n", 2: "v"}
		for _, r := range raw {
			m := map[string]any{}
			for k, v := range r {
				switch kk := k.(type) {
				case int64:
					m[labels[kk]] = v
				case uint64:
					if kk < 8 {
						m[labels[int64(kk)]] = v
					}
				case string:
					m[kk] = v
				}
			}
			recs = append(recs, m)
		}
	}
	var base string
	found := false
	var val any
	for _, r := range recs {
		if bn, ok := r["bn"].(string); ok {
			base = bn
		}
		n, _ := r["n"].(string)
		if base+n == name || (n != "" && n == name) {
			v, ok := r["v"]
			found = true
			if !ok {
				val = nil
				continue
			}
			val = v
		}
	}
	if !found {
		return 0, errMissing
	}
	if val == nil {
		return 0, errNotNumber
	}
	return anyNumber(val)
}
