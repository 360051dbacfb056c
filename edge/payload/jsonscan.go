package payload

import (
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
	if !s.value() {
		return s.err
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
		if !s.str() {
			return false
		}
		s.ws()
		if s.i >= len(s.p) || s.p[s.i] != ':' {
			return s.fail("missing ':' after object key at offset %d", s.i)
		}
		s.i++
		s.ws()
		if !s.value() {
			return false
		}
		s.ws()
		if s.i >= len(s.p) {
			return s.fail("unexpected end of JSON input")
		}
		switch s.p[s.i] {
		case ',':
			s.i++
		case '}':
			s.i++
			s.depth--
			return true
		default:
			return s.fail("invalid character %q after object value", s.p[s.i])
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
	for {
		if !s.item() {
			return false
		}
		s.ws()
		if !s.value() {
			return false
		}
		s.ws()
		if s.i >= len(s.p) {
			return s.fail("unexpected end of JSON input")
		}
		switch s.p[s.i] {
		case ',':
			s.i++
		case ']':
			s.i++
			s.depth--
			return true
		default:
			return s.fail("invalid character %q after array element", s.p[s.i])
		}
	}
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
