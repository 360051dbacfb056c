package payload

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// Format is how an ingest rule reads payloads.
type Format string

// Formats an ingest rule may name.
const (
	FormatAuto      Format = "auto"
	FormatReading   Format = "reading"
	FormatJSON      Format = "json"
	FormatCBOR      Format = "cbor"
	FormatSenMLJSON Format = "senml-json"
	FormatSenMLCBOR Format = "senml-cbor"
	FormatText      Format = "text"
	FormatRaw       Format = "raw"
	FormatSparkplug Format = "sparkplug-b"
)

// Content types of the generic formats.
const (
	ContentText      = "text/plain"
	ContentRaw       = "application/octet-stream"
	ContentSparkplug = "application/vnd.sparkplug-b+protobuf"
)

// ParseFormat checks a rule's format name ("" is auto).
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case "":
		return FormatAuto, nil
	case FormatAuto, FormatReading, FormatJSON, FormatCBOR, FormatSenMLJSON, FormatSenMLCBOR, FormatText, FormatRaw, FormatSparkplug:
		return f, nil
	}
	return "", fmt.Errorf("unknown format %q (want auto, reading, json, cbor, senml-json, senml-cbor, text, raw or sparkplug-b)", s)
}

// Limits bound what a generic JSON or CBOR payload may hold; they are
// checked before anything is decoded.
type Limits struct {
	// MaxDepth is the deepest nesting of objects and arrays (default 16).
	MaxDepth int `yaml:"max_depth"`
	// MaxItems bounds the keys plus array elements of the whole payload
	// (default 1024).
	MaxItems int `yaml:"max_items"`

	dm cbor.DecMode
}

// Compile fills defaults and builds the CBOR decoder the limits need.
func (l Limits) Compile() (Limits, error) {
	if l.MaxDepth <= 0 {
		l.MaxDepth = 16
	}
	if l.MaxItems <= 0 {
		l.MaxItems = 1024
	}
	if l.MaxDepth > 256 || l.MaxItems > 1<<20 {
		return l, fmt.Errorf("limits: max_depth ≤ 256 and max_items ≤ 1048576")
	}
	dm, err := cbor.DecOptions{
		MaxNestedLevels:  max(4, l.MaxDepth+1), // the library counts the top level
		MaxArrayElements: max(16, l.MaxItems),
		MaxMapPairs:      max(16, l.MaxItems),
		IndefLength:      cbor.IndefLengthForbidden,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		IntDec:           cbor.IntDecConvertNone,
		UTF8:             cbor.UTF8RejectInvalid,
		DefaultMapType:   nil,
	}.DecMode()
	if err != nil {
		return l, fmt.Errorf("limits: %w", err)
	}
	l.dm = dm
	return l, nil
}

var defaultLimits = func() Limits {
	l, err := Limits{}.Compile()
	if err != nil {
		panic(fmt.Sprintf("payload: default limits: %v", err))
	}
	return l
}()

func (l *Limits) mode() cbor.DecMode {
	if l.dm == nil {
		return defaultLimits.dm
	}
	return l.dm
}

// CheckJSON reports whether p is one well-formed JSON value (RFC 8259,
// UTF-8) within l, in one pass that counts depth and items as it goes, so
// a deep or huge document is refused before it is walked to the end.
func CheckJSON(p []byte, l *Limits) error {
	s := jsonScanner{p: p, maxDepth: l.MaxDepth, maxItems: l.MaxItems}
	if s.maxDepth <= 0 {
		s.maxDepth, s.maxItems = defaultLimits.MaxDepth, defaultLimits.MaxItems
	}
	return s.document()
}

// CheckJSONFields is CheckJSON that also finds the fields f wants in the
// same pass (f.Field then gives what JSONField would); on error no field
// is found.
func CheckJSONFields(p []byte, l *Limits, f *JSONFields) error {
	s := jsonScanner{p: p, maxDepth: l.MaxDepth, maxItems: l.MaxItems, f: *f, fields: true}
	if s.maxDepth <= 0 {
		s.maxDepth, s.maxItems = defaultLimits.MaxDepth, defaultLimits.MaxItems
	}
	if err := s.document(); err != nil {
		f.raw = [2][]byte{}
		return err
	}
	f.raw = s.f.raw
	return nil
}

// CheckCBOR reports whether p is one valid CBOR data item within l (well
// formed, and text strings valid UTF-8, which well-formedness alone does
// not check). CBORValue does the same and keeps the value.
func CheckCBOR(p []byte, l *Limits) error {
	_, err := CBORValue(p, l)
	return err
}

// CheckText reports whether p is UTF-8 text.
func CheckText(p []byte) error {
	if !utf8.Valid(p) {
		return invalid("text: not valid UTF-8")
	}
	return nil
}

// TextKind says what a text payload holds: "number", "bool" or "text"
// (Shelly and ESPHome send one value per topic as text).
func TextKind(p []byte) string {
	s := strings.TrimSpace(string(p))
	switch s {
	case "true", "false", "on", "off", "ON", "OFF":
		return "bool"
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return "number"
	}
	return "text"
}

// Path is a parsed JSON pointer (RFC 6901): "/a/b/0". For CBOR a segment
// matches a text key, or an integer key when it is a decimal integer.
type Path []string

// ParsePath parses a JSON pointer; "" is the whole document.
func ParsePath(s string) (Path, error) {
	if s == "" {
		return Path{}, nil
	}
	if s[0] != '/' {
		return nil, fmt.Errorf("field %q: a JSON pointer starts with '/'", s)
	}
	parts := strings.Split(s[1:], "/")
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
	}
	return Path(parts), nil
}

// Scalar is a value picked out of a payload by a Path.
type Scalar struct {
	IsNum  bool
	IsInt  bool
	Num    float64
	Int    int64
	Str    string
	IsStr  bool
	TimeMs int64 // a CBOR time tag (1)
	IsTime bool
}

// JSONField returns the scalar at path in well-formed JSON p (checked by
// CheckJSON). It walks the bytes without building the document.
func JSONField(p []byte, path Path) (Scalar, bool) {
	v, ok := jsonLookup(p, path)
	if !ok {
		return Scalar{}, false
	}
	return jsonScalar(v)
}

// jsonScalar reads one well-formed JSON value: a string or a number.
func jsonScalar(v []byte) (Scalar, bool) {
	if len(v) == 0 {
		return Scalar{}, false
	}
	switch v[0] {
	case '"':
		var s string
		if bytes.IndexByte(v, '\\') < 0 {
			s = string(v[1 : len(v)-1])
		} else if json.Unmarshal(v, &s) != nil {
			return Scalar{}, false
		}
		return Scalar{Str: s, IsStr: true}, true
	case '{', '[', 't', 'f', 'n':
		return Scalar{}, false
	}
	sv := string(v)
	if i, err := strconv.ParseInt(sv, 10, 64); err == nil {
		return Scalar{IsNum: true, IsInt: true, Int: i, Num: float64(i)}, true
	}
	f, err := strconv.ParseFloat(sv, 64)
	if err != nil {
		return Scalar{}, false
	}
	return Scalar{IsNum: true, Num: f}, true
}

func skipWS(p []byte, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n') {
		i++
	}
	return i
}

// skipValue returns the index just past the value starting at p[i].
func skipValue(p []byte, i int) int {
	if i >= len(p) {
		return i
	}
	switch p[i] {
	case '"':
		for i++; i < len(p); i++ {
			switch p[i] {
			case '\\':
				i++
			case '"':
				return i + 1
			}
		}
		return i
	case '{', '[':
		depth := 0
		for ; i < len(p); i++ {
			switch p[i] {
			case '"':
				i = skipValue(p, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	}
	for i < len(p) && p[i] != ',' && p[i] != '}' && p[i] != ']' && p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n' {
		i++
	}
	return i
}

func jsonLookup(p []byte, path Path) ([]byte, bool) {
	i := skipWS(p, 0)
	for _, seg := range path {
		if i >= len(p) {
			return nil, false
		}
		switch p[i] {
		case '{':
			// A repeated key's last value wins, as with encoding/json.
			i = skipWS(p, i+1)
			found := -1
			for i < len(p) && p[i] != '}' {
				ks := i
				i = skipValue(p, i)
				key := p[ks:i]
				i = skipWS(p, i)
				if i >= len(p) || p[i] != ':' {
					return nil, false
				}
				i = skipWS(p, i+1)
				if keyEquals(key, seg) {
					found = i
				}
				i = skipWS(p, skipValue(p, i))
				if i < len(p) && p[i] == ',' {
					i = skipWS(p, i+1)
				}
			}
			if found < 0 {
				return nil, false
			}
			i = found
		case '[':
			n, err := strconv.Atoi(seg)
			if err != nil || n < 0 {
				return nil, false
			}
			i = skipWS(p, i+1)
			for ; n > 0 && i < len(p) && p[i] != ']'; n-- {
				i = skipWS(p, skipValue(p, i))
				if i < len(p) && p[i] == ',' {
					i = skipWS(p, i+1)
				}
			}
			if i >= len(p) || p[i] == ']' {
				return nil, false
			}
		default:
			return nil, false
		}
	}
	if i >= len(p) {
		return nil, false
	}
	return p[i:skipValue(p, i)], true
}

func keyEquals(raw []byte, seg string) bool {
	if len(raw) < 2 {
		return false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1:len(raw)-1]) == seg
	}
	var s string
	return json.Unmarshal(raw, &s) == nil && s == seg
}

// CBORValue decodes well-formed CBOR p (checked by CheckCBOR) into Go
// values: maps as map[any]any, arrays as []any.
func CBORValue(p []byte, l *Limits) (any, error) {
	if len(p) == 0 {
		return nil, invalid("cbor: empty")
	}
	// The limits are checked by a walk that builds nothing, before the
	// decode allocates anything.
	if err := l.mode().Wellformed(p); err != nil {
		return nil, invalid("cbor: %v", err)
	}
	var v any
	if err := l.mode().Unmarshal(p, &v); err != nil {
		return nil, invalid("cbor: %v", err)
	}
	return v, nil
}

// CBORField returns the scalar at path in a decoded CBOR value.
func CBORField(v any, path Path) (Scalar, bool) {
	for _, seg := range path {
		switch x := v.(type) {
		case map[any]any:
			var ok bool
			if v, ok = x[seg]; ok {
				continue
			}
			n, err := strconv.ParseInt(seg, 10, 64)
			if err != nil {
				return Scalar{}, false
			}
			if v, ok = x[n]; ok {
				continue
			}
			if n >= 0 {
				if v, ok = x[uint64(n)]; ok {
					continue
				}
			}
			return Scalar{}, false
		case []any:
			n, err := strconv.Atoi(seg)
			if err != nil || n < 0 || n >= len(x) {
				return Scalar{}, false
			}
			v = x[n]
		default:
			return Scalar{}, false
		}
	}
	return scalarOf(v)
}

func scalarOf(v any) (Scalar, bool) {
	switch x := v.(type) {
	case uint64:
		if x > 1<<63-1 {
			return Scalar{IsNum: true, Num: float64(x)}, true
		}
		return Scalar{IsNum: true, IsInt: true, Int: int64(x), Num: float64(x)}, true
	case int64:
		return Scalar{IsNum: true, IsInt: true, Int: x, Num: float64(x)}, true
	case float64:
		return Scalar{IsNum: true, Num: x}, true
	case float32:
		return Scalar{IsNum: true, Num: float64(x)}, true
	case string:
		return Scalar{Str: x, IsStr: true}, true
	case time.Time:
		return Scalar{IsTime: true, TimeMs: x.UnixMilli()}, true
	case cbor.Tag:
		if x.Number == 1 {
			s, ok := scalarOf(x.Content)
			if ok && s.IsNum {
				return Scalar{IsTime: true, TimeMs: int64(s.Num * 1000)}, true
			}
		}
	}
	return Scalar{}, false
}

// JSONCompatible turns a decoded CBOR value into the shapes encoding/json
// produces (string keys, []any), for schema validation and rendering.
func JSONCompatible(v any) (any, error) {
	switch x := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			var ks string
			switch kk := k.(type) {
			case string:
				ks = kk
			case int64:
				ks = strconv.FormatInt(kk, 10)
			case uint64:
				ks = strconv.FormatUint(kk, 10)
			default:
				return nil, fmt.Errorf("map key of type %T has no JSON form", k)
			}
			c, err := JSONCompatible(e)
			if err != nil {
				return nil, err
			}
			m[ks] = c
		}
		return m, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			c, err := JSONCompatible(e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case uint64:
		return json.Number(strconv.FormatUint(x, 10)), nil
	case int64:
		return json.Number(strconv.FormatInt(x, 10)), nil
	case float32:
		return float64(x), nil
	case []byte:
		return string(x), nil
	case cbor.Tag:
		return JSONCompatible(x.Content)
	case time.Time:
		return x.Format(time.RFC3339Nano), nil
	}
	return v, nil
}
