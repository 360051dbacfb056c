package sparkplug

import (
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// fastDecode decodes the common shape of a Sparkplug payload without the
// protobuf library's table-driven, reflective path: a Payload whose fields
// are timestamp, metrics, seq, uuid and body, and whose metrics hold only
// scalar fields (name, alias, timestamp, datatype, the three flags, and a
// scalar, string or bytes value) — every NDATA/DDATA and most births.
//
// It says yes only to payloads proto.Unmarshal accepts, building an equal
// message (FuzzDecodeFastPath checks this). Anything else — metadata,
// properties, data sets, templates, extensions, unknown fields, a known
// field with an unexpected wire type, malformed bytes — returns ok=false
// and takes the library path, which also words the error.
//
// It applies lim itself (a flat payload has no depth and one element per
// metric), so it runs before the general pre-scan; over a limit it declines
// and the general path reports the error.
func fastDecode(b []byte, lim Limits) (*Payload, bool) {
	nMetrics, ok := countTopLevelMetrics(b)
	if !ok || nMetrics > lim.MaxMetrics || nMetrics > lim.MaxElements {
		return nil, false
	}
	p := &Payload{}
	var metrics []*Payload_Metric
	var block []Payload_Metric
	if nMetrics > 0 {
		// One allocation for all the metric structs instead of one each;
		// they are never copied, only pointed to.
		block = make([]Payload_Metric, nMetrics)
		metrics = make([]*Payload_Metric, 0, nMetrics)
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		switch {
		case (num == 1 || num == 3) && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, false
			}
			b = b[n:]
			if num == 1 {
				p.SetTimestamp(v)
			} else {
				p.SetSeq(v)
			}
		case num >= 2 && num <= 5 && num != 3 && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, false
			}
			b = b[n:]
			switch num {
			case 2:
				m := &block[len(metrics)]
				if !fastMetric(v, m) {
					return nil, false
				}
				metrics = append(metrics, m)
			case 4:
				p.SetUuid(string(v))
			case 5:
				p.SetBody(append(make([]byte, 0, len(v)), v...))
			}
		default:
			return nil, false
		}
	}
	if len(metrics) > 0 {
		p.SetMetrics(metrics)
	}
	return p, true
}

// countTopLevelMetrics counts the metrics field of a payload, checking only
// the framing of the top level.
func countTopLevelMetrics(b []byte) (int, bool) {
	n := 0
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return 0, false
		}
		b = b[l:]
		l = protowire.ConsumeFieldValue(num, typ, b)
		if l < 0 {
			return 0, false
		}
		b = b[l:]
		if num == 2 {
			n++
		}
	}
	return n, true
}

// fastMetric fills m from a metric's bytes, reporting false for anything
// outside the fast path's shape.
func fastMetric(b []byte, m *Payload_Metric) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			b = b[n:]
			switch num {
			case 2:
				m.SetAlias(v)
			case 3:
				m.SetTimestamp(v)
			case 4:
				m.SetDatatype(uint32(v))
			case 5:
				m.SetIsHistorical(v != 0)
			case 6:
				m.SetIsTransient(v != 0)
			case 7:
				m.SetIsNull(v != 0)
			case 10:
				m.SetIntValue(uint32(v))
			case 11:
				m.SetLongValue(v)
			case 14:
				m.SetBooleanValue(v != 0)
			default:
				return false
			}
		case protowire.Fixed32Type:
			if num != 12 {
				return false
			}
			v, n := protowire.ConsumeFixed32(b)
			if n < 0 {
				return false
			}
			b = b[n:]
			m.SetFloatValue(math.Float32frombits(v))
		case protowire.Fixed64Type:
			if num != 13 {
				return false
			}
			v, n := protowire.ConsumeFixed64(b)
			if n < 0 {
				return false
			}
			b = b[n:]
			m.SetDoubleValue(math.Float64frombits(v))
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			b = b[n:]
			switch num {
			case 1:
				m.SetName(string(v))
			case 15:
				m.SetStringValue(string(v))
			case 16:
				m.SetBytesValue(append(make([]byte, 0, len(v)), v...))
			default:
				return false
			}
		default:
			return false
		}
	}
	return true
}
