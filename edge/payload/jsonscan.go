package payload

import (
	"strconv"
	"unicode/utf8"
)

// jsonScanner validates one JSON document (RFC 8259, UTF-8) in a single
// pass, counting nesting and items against the limits as it goes:
// encoding/json's Valid, a state machine called per byte, was a third of
// the cost of a generic JSON publish.
type jsonScanner struct {
	p        []byte
	i        int
	depth    int
	items    int
	maxDepth int
	maxItems int
	err      error

	// f collects the values at its paths during the same pass when fields
	// is set (CheckJSONFields). It is held by value: through a pointer the
	// caller's JSONFields would escape to the heap (the recursive scan
	// leaks what it points to), an allocation per payload.
	f      JSONFields
	fields bool
}

// JSONFields asks CheckJSONFields for the values at up to two paths (a
// rule's time and seq fields). It finds what JSONField finds: a key
// repeated in an object takes its last value, as with encoding/json and
// the stream engine's paths, so every reader of a payload agrees.
type JSONFields struct {
	paths [2]Path
	want  [2]bool
	// on[i] is how many of paths[i]'s segments the value being scanned
	// matched, or -1 when not wanted. A route stays open in each container
	// it went through until that container closes: a later duplicate key
	// takes it again.
	on  [2]int
	raw [2][]byte
}

// Want asks for the value at path as field i (0 or 1).
func (f *JSONFields) Want(i int, path Path) { f.paths[i], f.want[i] = path, true }

// Field returns field i as JSONField would: a string or number scalar.
func (f *JSONFields) Field(i int) (Scalar, bool) {
	if f.raw[i] == nil {
		return Scalar{}, false
	}
	return jsonScalar(f.raw[i])
}

// start readies the lookups for a scan of a document.
func (f *JSONFields) start() {
	for i := range f.on {
		f.on[i], f.raw[i] = -1, nil
		if f.want[i] {
			f.on[i] = 0
		}
	}
}

// routes reports which fields take the object member with key (raw,
// quoted) or the array element idx (key nil) at nesting depth d (1 for the
// top-level container): bit i set for field i.
func (f *JSONFields) routes(d int, key []byte, idx int) (m uint8) {
	for i := range f.on {
		if f.on[i] != d-1 || len(f.paths[i]) < d {
			continue
		}
		seg := f.paths[i][d-1]
		if key != nil {
			if !keyEquals(key, seg) {
				continue
			}
		} else if n, err := strconv.Atoi(seg); err != nil || n != idx {
			continue
		}
		m |= 1 << i
	}
	return m
}

// enterRoute notes that the value now scanned, a member or element of the
// container at depth d, is on fields m's routes. What an earlier member
// with the same key gave them no longer counts: the last one wins.
func (s *jsonScanner) enterRoute(m uint8, d int) {
	for i := range s.f.on {
		if m&(1<<i) != 0 {
			s.f.on[i], s.f.raw[i] = d, nil
		}
	}
}

// leaveRoute ends fields m's routes at the value that began at start: a
// field whose path ends here takes its bytes. Either way the route goes
// back to the container at depth d, where a later duplicate of the key
// may take it again.
func (s *jsonScanner) leaveRoute(m uint8, d, start int) {
	for i := range s.f.on {
		if m&(1<<i) != 0 {
			if len(s.f.paths[i]) == d {
				s.f.raw[i] = s.p[start:s.i]
			}
			s.f.on[i] = d - 1
		}
	}
}

func (s *jsonScanner) fail(format string, args ...any) bool {
	if s.err == nil {
		s.err = invalid("json: "+format, args...)
	}
	return false
}

func (s *jsonScanner) ws() {
	for s.i < len(s.p) {
		switch s.p[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScanner) document() error {
	s.ws()
	if s.fields {
		s.f.start()
	}
	start := s.i
	if !s.value() {
		return s.err
	}
	if s.fields {
		for i := range s.f.on {
			if s.f.want[i] && len(s.f.paths[i]) == 0 { // the whole document
				s.f.raw[i] = s.p[start:s.i]
			}
		}
	}
	s.ws()
	if s.i != len(s.p) {
		return invalid("json: invalid character %q after top-level value", s.p[s.i])
	}
	return nil
}

func (s *jsonScanner) value() bool {
	if s.i >= len(s.p) {
		return s.fail("unexpected end of JSON input")
	}
	switch c := s.p[s.i]; {
	case c == '{':
		return s.object()
	case c == '[':
		return s.array()
	case c == '"':
		return s.str()
	case c == '-' || c >= '0' && c <= '9':
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		return s.fail("invalid character %q looking for beginning of value", c)
	}
}

func (s *jsonScanner) literal(lit string) bool {
	if len(s.p)-s.i < len(lit) || string(s.p[s.i:s.i+len(lit)]) != lit {
		return s.fail("invalid literal at offset %d", s.i)
	}
	s.i += len(lit)
	return true
}

func (s *jsonScanner) enter() bool {
	if s.depth++; s.depth > s.maxDepth {
		return s.fail("nested deeper than %d", s.maxDepth)
	}
	return true
}

func (s *jsonScanner) item() bool {
	if s.items++; s.items > s.maxItems {
		return s.fail("more than %d items", s.maxItems)
	}
	return true
}

func (s *jsonScanner) object() bool {
	if !s.enter() {
		return false
	}
	s.i++ // {
	s.ws()
	if s.i < len(s.p) && s.p[s.i] == '}' {
		s.i++
		s.depth--
		return true
	}
	for {
		if !s.item() {
			return false
		}
		s.ws()
		if s.i >= len(s.p) || s.p[s.i] != '"' {
			return s.fail("object key is not a string at offset %d", s.i)
		}
		ks := s.i
		if !s.str() {
			return false
		}
		var route uint8
		if s.onRoute() {
			route = s.f.routes(s.depth, s.p[ks:s.i], 0)
		}
		s.ws()
		if s.i >= len(s.p) || s.p[s.i] != ':' {
			return s.fail("missing ':' after object key at offset %d", s.i)
		}
		s.i++
		s.ws()
		if more, ok := s.member(route, '}', "object value"); !more {
			return ok
		}
	}
}

func (s *jsonScanner) array() bool {
	if !s.enter() {
		return false
	}
	s.i++ // [
	s.ws()
	if s.i < len(s.p) && s.p[s.i] == ']' {
		s.i++
		s.depth--
		return true
	}
	for idx := 0; ; idx++ {
		if !s.item() {
			return false
		}
		s.ws()
		var route uint8
		if s.onRoute() {
			route = s.f.routes(s.depth, nil, idx)
		}
		if more, ok := s.member(route, ']', "array element"); !more {
			return ok
		}
	}
}

// member scans an object's or array's value at s.i (along a field's route
// when route is not 0) and what follows it: ',' before the next one, or
// end, which closes the container. more says whether another follows; ok
// is false when the input is bad.
func (s *jsonScanner) member(route uint8, end byte, what string) (more, ok bool) {
	if route != 0 {
		ok = s.routedValue(route)
	} else {
		ok = s.value()
	}
	if !ok {
		return false, false
	}
	s.ws()
	if s.i >= len(s.p) {
		return false, s.fail("unexpected end of JSON input")
	}
	switch s.p[s.i] {
	case ',':
		s.i++
		return true, true
	case end:
		s.i++
		s.depth--
		return false, true
	default:
		return false, s.fail("invalid character %q after %s", s.p[s.i], what)
	}
}

// onRoute says whether a field's route passes through the container being
// scanned (a cheap test before routes compares keys).
func (s *jsonScanner) onRoute() bool {
	return s.fields && (s.f.on[0] == s.depth-1 || s.f.on[1] == s.depth-1)
}

// routedValue scans a value on the route of fields m (see JSONFields).
func (s *jsonScanner) routedValue(m uint8) bool {
	d := s.depth
	start := s.i
	s.enterRoute(m, d)
	if !s.value() {
		return false
	}
	s.leaveRoute(m, d, start)
	return true
}

func hexDigit(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func (s *jsonScanner) str() bool {
	s.i++ // opening quote
	for s.i < len(s.p) {
		c := s.p[s.i]
		switch {
		case c == '"':
			s.i++
			return true
		case c == '\\':
			if s.i+1 >= len(s.p) {
				return s.fail("unexpected end of JSON input")
			}
			switch s.p[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if s.i+6 > len(s.p) || !hexDigit(s.p[s.i+2]) || !hexDigit(s.p[s.i+3]) || !hexDigit(s.p[s.i+4]) || !hexDigit(s.p[s.i+5]) {
					return s.fail("invalid \\u escape at offset %d", s.i)
				}
				s.i += 6
			default:
				return s.fail("invalid escape at offset %d", s.i)
			}
		case c < 0x20:
			return s.fail("control character in string at offset %d", s.i)
		case c < utf8.RuneSelf:
			s.i++
		default:
			r, n := utf8.DecodeRune(s.p[s.i:])
			if r == utf8.RuneError && n <= 1 {
				return s.fail("not valid UTF-8") // RFC 8259 8.1; encoding/json would replace the bytes
			}
			s.i += n
		}
	}
	return s.fail("unexpected end of JSON input")
}

func (s *jsonScanner) digits() int {
	n := 0
	for s.i < len(s.p) && s.p[s.i] >= '0' && s.p[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *jsonScanner) number() bool {
	if s.p[s.i] == '-' {
		s.i++
	}
	if s.i >= len(s.p) {
		return s.fail("unexpected end of JSON input")
	}
	if s.p[s.i] == '0' {
		s.i++
	} else if s.digits() == 0 {
		return s.fail("invalid number at offset %d", s.i)
	}
	if s.i < len(s.p) && s.p[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return s.fail("invalid number at offset %d", s.i)
		}
	}
	if s.i < len(s.p) && (s.p[s.i] == 'e' || s.p[s.i] == 'E') {
		s.i++
		if s.i < len(s.p) && (s.p[s.i] == '+' || s.p[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return s.fail("invalid number at offset %d", s.i)
		}
	}
	return true
}
