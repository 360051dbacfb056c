package sparkplug

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Limits bound what Decode accepts, so that the memory a payload can make the
// protobuf library allocate is a bounded multiple of its size and a fixed
// ceiling. A decoded sub-message costs roughly 100–200 bytes however few wire
// bytes it took, which is why sub-messages are counted and not just bytes.
type Limits struct {
	// MaxBytes is the largest payload accepted, in bytes.
	MaxBytes int
	// MaxMetrics counts metrics at every level, including the members of
	// templates.
	MaxMetrics int
	// MaxDepth is how deeply templates, data sets and property sets may nest
	// inside one another; a top-level metric holding a data set is depth 1.
	MaxDepth int
	// MaxElements counts every sub-message (metrics, data set rows and
	// values, template parameters, property values, metadata, extensions).
	MaxElements int
}

// DefaultLimits are generous for real births (tens of thousands of metrics)
// and keep the worst case to a few tens of megabytes.
var DefaultLimits = Limits{
	MaxBytes:    1 << 20,
	MaxMetrics:  50_000,
	MaxDepth:    8,
	MaxElements: 100_000,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	l.MaxBytes = orDefault(l.MaxBytes, d.MaxBytes)
	l.MaxMetrics = orDefault(l.MaxMetrics, d.MaxMetrics)
	l.MaxDepth = orDefault(l.MaxDepth, d.MaxDepth)
	l.MaxElements = orDefault(l.MaxElements, d.MaxElements)
	return l
}

// orDefault returns v, or d when v is zero or negative: how every limit in
// this package says "unset".
func orDefault(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

// ErrLimit is wrapped by Decode's error when a payload exceeds its Limits,
// as opposed to being malformed.
var ErrLimit = errors.New("sparkplug payload over limit")

// Decode decodes a Sparkplug B payload within DefaultLimits. STATE messages
// are JSON and are not passed here.
func Decode(p []byte) (*Payload, error) {
	return DecodeLimits(p, DefaultLimits)
}

// DecodeLimits decodes a Sparkplug B payload within lim; zero or negative
// fields take the DefaultLimits value. Flat payloads (see fastDecode) are
// decoded directly; others are first walked to check the limits and the
// framing, then unmarshalled by the protobuf library.
func DecodeLimits(p []byte, lim Limits) (*Payload, error) {
	lim = lim.withDefaults()
	if len(p) > lim.MaxBytes {
		return nil, fmt.Errorf("sparkplug payload of %d bytes, limit %d: %w", len(p), lim.MaxBytes, ErrLimit)
	}
	if out, ok := fastDecode(p, lim); ok {
		return out, nil
	}
	s := scan{lim: lim}
	if err := s.message(p, kindPayload, 0); err != nil {
		return nil, fmt.Errorf("sparkplug payload: %w", err)
	}
	var out Payload
	// The scan already bounded the depth; the recursion limit is a second
	// fence in case the scan's table and the schema ever disagree.
	opts := proto.UnmarshalOptions{RecursionLimit: 4*lim.MaxDepth + 8}
	if err := opts.Unmarshal(p, &out); err != nil {
		return nil, fmt.Errorf("sparkplug payload: protobuf: %w", err)
	}
	return &out, nil
}

// kind names the message types of sparkplug_b.proto for the pre-scan.
type kind uint8

const (
	kindPayload kind = iota
	kindMetric
	kindTemplate
	kindParameter
	kindDataSet
	kindRow
	kindDataSetValue
	kindPropertyValue
	kindPropertySet
	kindPropertySetList
	kindLeaf // MetaData and the extension messages: no sub-messages we know of
)

// subMessage is a field of a message kind that holds a sub-message: of which
// kind, and whether entering it nests one level deeper.
type subMessage struct {
	field  protowire.Number
	kind   kind
	deeper bool
}

// subMessages is sparkplug_b.proto's tree as the pre-scan walks it: for each
// kind, its fields that hold sub-messages.
var subMessages = [...][]subMessage{
	kindPayload:         {{2, kindMetric, false}},
	kindMetric:          {{8, kindLeaf, false}, {19, kindLeaf, false}, {9, kindPropertySet, true}, {17, kindDataSet, true}, {18, kindTemplate, true}},
	kindTemplate:        {{2, kindMetric, false}, {3, kindParameter, false}},
	kindParameter:       {{9, kindLeaf, false}},
	kindDataSet:         {{4, kindRow, false}},
	kindRow:             {{1, kindDataSetValue, false}},
	kindDataSetValue:    {{7, kindLeaf, false}},
	kindPropertyValue:   {{9, kindPropertySet, true}, {10, kindPropertySetList, true}, {11, kindLeaf, false}},
	kindPropertySet:     {{2, kindPropertyValue, false}},
	kindPropertySetList: {{1, kindPropertySet, false}},
	kindLeaf:            nil,
}

// child tells which fields of a message kind hold sub-messages, of which
// kind, and whether entering one nests one level deeper.
func child(k kind, field protowire.Number) (c kind, deeper, ok bool) {
	for _, m := range subMessages[k] {
		if m.field == field {
			return m.kind, m.deeper, true
		}
	}
	return 0, false, false
}

// scan walks protobuf wire bytes along the schema, counting what the
// unmarshal would allocate. It does not allocate itself.
type scan struct {
	lim               Limits
	metrics, elements int
}

func (s *scan) message(b []byte, k kind, depth int) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("bad field tag: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if typ != protowire.BytesType {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
		c, deeper, ok := child(k, num)
		if !ok {
			continue // a string, bytes, packed scalars or an unknown field: no sub-messages
		}
		s.elements++
		if s.elements > s.lim.MaxElements {
			return fmt.Errorf("more than %d nested elements: %w", s.lim.MaxElements, ErrLimit)
		}
		if c == kindMetric {
			s.metrics++
			if s.metrics > s.lim.MaxMetrics {
				return fmt.Errorf("more than %d metrics: %w", s.lim.MaxMetrics, ErrLimit)
			}
		}
		d := depth
		if deeper {
			d++
			if d > s.lim.MaxDepth {
				return fmt.Errorf("templates, data sets or property sets nested deeper than %d: %w", s.lim.MaxDepth, ErrLimit)
			}
		}
		if c == kindLeaf {
			continue
		}
		if err := s.message(v, c, d); err != nil {
			return err
		}
	}
	return nil
}
