// Package rules decides, for each MQTT topic, which ingest rule applies and
// what it makes of the publish: the stream, the record key, extra headers,
// the payload format and where the device time comes from. Rules are
// ordered and the first whose topic filter matches wins.
//
// A filter is an MQTT topic filter whose levels may also be named captures:
//
//	tele/{device}/SENSOR        {name} captures one level
//	shellies/{device}/{+rest}   {+name} captures one or more levels (last)
//	spBv1.0/{group}/{type}/{node}/{device?}
//	                            {name?} captures an optional last level
//	a/+/#                       + and # as in MQTT, not captured
//
// Filters are split once at start-up and templates ("plant.{group}") are
// compiled into literal and capture parts, so matching a publish walks the
// topic once and allocates nothing; rendering a template that is one
// literal or one single-level capture allocates nothing either.
package rules

import (
	"fmt"
	"strings"
)

// MaxCaptures bounds the named captures of one filter.
const MaxCaptures = 8

type segKind uint8

const (
	segLiteral  segKind = iota
	segCapture          // {name}
	segPlus             // +
	segOptional         // {name?}, last
	segRest             // {+name}, last, one or more levels
	segHash             // #, last, zero or more levels
)

type segment struct {
	kind segKind
	lit  string
	cap  int // capture index for capture kinds
}

// filter is a compiled topic filter.
type filter struct {
	segs  []segment
	names []string // capture names by index
}

// span is a capture's position in the topic; start < 0 means absent (an
// optional level the topic does not have).
type span struct{ start, end int }

// Captures holds what one match captured; it lives on the caller's stack.
type Captures struct {
	topic string
	spans [MaxCaptures]span
}

// Get returns capture i ("" if absent).
func (c *Captures) Get(i int) string {
	s := c.spans[i]
	if s.start < 0 {
		return ""
	}
	return c.topic[s.start:s.end]
}

func parseFilter(f string) (*filter, error) {
	if f == "" {
		return nil, fmt.Errorf("filter is empty")
	}
	levels := strings.Split(f, "/")
	out := &filter{}
	for i, lv := range levels {
		last := i == len(levels)-1
		switch {
		case lv == "#":
			if !last {
				return nil, fmt.Errorf("filter %q: # must be the last level", f)
			}
			out.segs = append(out.segs, segment{kind: segHash})
		case lv == "+":
			out.segs = append(out.segs, segment{kind: segPlus})
		case strings.HasPrefix(lv, "{") && strings.HasSuffix(lv, "}"):
			name := lv[1 : len(lv)-1]
			kind := segCapture
			switch {
			case strings.HasPrefix(name, "+"):
				kind, name = segRest, name[1:]
			case strings.HasSuffix(name, "?"):
				kind, name = segOptional, name[:len(name)-1]
			}
			if kind != segCapture && !last {
				return nil, fmt.Errorf("filter %q: {%s} must be the last level", f, lv[1:len(lv)-1])
			}
			if !validName(name) {
				return nil, fmt.Errorf("filter %q: capture name %q: want letters, digits and _", f, name)
			}
			for _, n := range out.names {
				if n == name {
					return nil, fmt.Errorf("filter %q: capture {%s} defined twice", f, name)
				}
			}
			if len(out.names) == MaxCaptures {
				return nil, fmt.Errorf("filter %q: more than %d captures", f, MaxCaptures)
			}
			out.segs = append(out.segs, segment{kind: kind, cap: len(out.names)})
			out.names = append(out.names, name)
		default:
			if strings.ContainsAny(lv, "+#{}") {
				return nil, fmt.Errorf("filter %q: level %q mixes text with a wildcard or capture", f, lv)
			}
			out.segs = append(out.segs, segment{kind: segLiteral, lit: lv})
		}
	}
	return out, nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func (f *filter) capture(name string) int {
	for i, n := range f.names {
		if n == name {
			return i
		}
	}
	return -1
}

// match reports whether topic matches f, filling c. Captured levels are
// never empty: an empty level does not name anything. As in MQTT, a filter
// starting with a wildcard does not match topics starting with '$'.
func (f *filter) match(topic string, c *Captures) bool {
	c.topic = topic
	if len(topic) > 0 && topic[0] == '$' && len(f.segs) > 0 && f.segs[0].kind != segLiteral {
		return false
	}
	pos := 0 // start of the current level; len(topic)+1 once past the end
	for i := range f.segs {
		s := &f.segs[i]
		if pos > len(topic) { // no level left
			switch s.kind {
			case segHash:
				return true
			case segOptional:
				c.spans[s.cap] = span{-1, -1}
				return true
			}
			return false
		}
		end := strings.IndexByte(topic[pos:], '/')
		if end < 0 {
			end = len(topic)
		} else {
			end += pos
		}
		lv := topic[pos:end]
		switch s.kind {
		case segLiteral:
			if lv != s.lit {
				return false
			}
		case segPlus:
		case segCapture, segOptional:
			if lv == "" {
				return false
			}
			if s.kind == segOptional && end != len(topic) {
				return false // more levels follow
			}
			c.spans[s.cap] = span{pos, end}
		case segRest:
			if pos >= len(topic) {
				return false
			}
			c.spans[s.cap] = span{pos, len(topic)}
			return true
		case segHash:
			return true
		}
		pos = end + 1
	}
	return pos > len(topic)
}
