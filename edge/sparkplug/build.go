package sparkplug

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
)

// NewMetric returns a metric with the given name (none when empty), datatype
// and value. The value is stored in the field Sparkplug uses for the
// datatype: Int8/16/32 and UInt8/16/32 in int_value (signed ones as two's
// complement), Int64, UInt64 and DateTime in long_value, Float, Double,
// Boolean, String/Text/UUID, Bytes/File and arrays (as []byte, already
// packed) in theirs, DataSet and Template as *Payload_DataSet and
// *Payload_Template. A nil value makes an is_null metric. Go integer types of
// any width are accepted for the integer datatypes; time.Time for DateTime.
// It returns an error when the value does not suit the datatype.
func NewMetric(name string, dt DataType, v any) (*Payload_Metric, error) {
	m := &Payload_Metric{}
	if name != "" {
		m.SetName(name)
	}
	m.SetDatatype(uint32(dt))
	if v == nil {
		m.SetIsNull(true)
		return m, nil
	}
	if err := setValue(m, dt, v); err != nil {
		return nil, fmt.Errorf("metric %q: %w", name, err)
	}
	return m, nil
}

// MustMetric is NewMetric for tests and fixed tables: it panics on a value
// that does not suit the datatype.
func MustMetric(name string, dt DataType, v any) *Payload_Metric {
	m, err := NewMetric(name, dt, v)
	if err != nil {
		panic(err)
	}
	return m
}

// AliasMetric returns a data metric that names itself by alias only, as
// NDATA and DDATA usually do. With dt Unknown the datatype is left out of the
// message (the birth gave it) and the value field is chosen from v's Go
// type: float64 Double, float32 Float, bool, string, []byte, int32/uint32
// and narrower int_value, other integers long_value.
func AliasMetric(alias uint64, dt DataType, v any) (*Payload_Metric, error) {
	omit := dt == DataType_Unknown
	if omit {
		dt = goDataType(v)
	}
	m, err := NewMetric("", dt, v)
	if err != nil {
		return nil, fmt.Errorf("alias %d: %w", alias, err)
	}
	m.SetAlias(alias)
	if omit {
		m.ClearDatatype()
	}
	return m, nil
}

// goDataType picks the datatype whose value field suits a Go value.
func goDataType(v any) DataType {
	switch v.(type) {
	case float64:
		return DataType_Double
	case float32:
		return DataType_Float
	case bool:
		return DataType_Boolean
	case string:
		return DataType_String
	case []byte:
		return DataType_Bytes
	case int8, int16, int32:
		return DataType_Int32
	case uint8, uint16, uint32:
		return DataType_UInt32
	case int, int64:
		return DataType_Int64
	case uint, uint64:
		return DataType_UInt64
	case time.Time:
		return DataType_DateTime
	case *Payload_DataSet:
		return DataType_DataSet
	case *Payload_Template:
		return DataType_Template
	}
	return DataType_Unknown
}

func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		return int64(x), true
	}
	return 0, false
}

func setValue(m *Payload_Metric, dt DataType, v any) error {
	switch dt {
	case DataType_Int8, DataType_Int16, DataType_Int32, DataType_UInt8, DataType_UInt16, DataType_UInt32:
		i, ok := asInt(v)
		if !ok {
			return fmt.Errorf("datatype %s needs an integer, got %T", DataTypeName(uint32(dt)), v)
		}
		m.SetIntValue(uint32(i))
	case DataType_Int64, DataType_UInt64:
		i, ok := asInt(v)
		if !ok {
			return fmt.Errorf("datatype %s needs an integer, got %T", DataTypeName(uint32(dt)), v)
		}
		m.SetLongValue(uint64(i))
	case DataType_DateTime:
		switch x := v.(type) {
		case time.Time:
			m.SetLongValue(uint64(x.UnixMilli()))
		default:
			i, ok := asInt(v)
			if !ok {
				return fmt.Errorf("datatype DateTime needs time.Time or milliseconds, got %T", v)
			}
			m.SetLongValue(uint64(i))
		}
	case DataType_Float:
		switch x := v.(type) {
		case float32:
			m.SetFloatValue(x)
		case float64:
			m.SetFloatValue(float32(x))
		default:
			return fmt.Errorf("datatype Float needs a float, got %T", v)
		}
	case DataType_Double:
		switch x := v.(type) {
		case float64:
			m.SetDoubleValue(x)
		case float32:
			m.SetDoubleValue(float64(x))
		default:
			return fmt.Errorf("datatype Double needs a float, got %T", v)
		}
	case DataType_Boolean:
		x, ok := v.(bool)
		if !ok {
			return fmt.Errorf("datatype Boolean needs a bool, got %T", v)
		}
		m.SetBooleanValue(x)
	case DataType_String, DataType_Text, DataType_UUID:
		x, ok := v.(string)
		if !ok {
			return fmt.Errorf("datatype %s needs a string, got %T", DataTypeName(uint32(dt)), v)
		}
		m.SetStringValue(x)
	case DataType_DataSet:
		x, ok := v.(*Payload_DataSet)
		if !ok {
			return fmt.Errorf("datatype DataSet needs *Payload_DataSet, got %T", v)
		}
		m.SetDatasetValue(x)
	case DataType_Template:
		x, ok := v.(*Payload_Template)
		if !ok {
			return fmt.Errorf("datatype Template needs *Payload_Template, got %T", v)
		}
		m.SetTemplateValue(x)
	default:
		if dt == DataType_Bytes || dt == DataType_File || (dt >= DataType_Int8Array && dt <= DataType_DateTimeArray) {
			x, ok := v.([]byte)
			if !ok {
				return fmt.Errorf("datatype %s needs []byte, got %T", DataTypeName(uint32(dt)), v)
			}
			m.SetBytesValue(x)
			return nil
		}
		return fmt.Errorf("cannot set a value of datatype %s", DataTypeName(uint32(dt)))
	}
	return nil
}

// Builder makes the messages of one edge node session the way a conforming
// node does: NBIRTH carries seq 0 and the bdSeq metric, every later NDATA,
// DBIRTH, DDATA and DDEATH the next seq mod 256, NDEATH the bdSeq and no seq.
// Each method returns the MQTT topic and the encoded payload. A Builder is
// not safe for concurrent use.
type Builder struct {
	Group, Node string
	// BdSeq goes into NBIRTH and NDEATH; a node increments it per MQTT
	// session.
	BdSeq uint64
	// Now stamps payloads; time.Now when nil.
	Now func() time.Time

	seq uint64 // the seq the next sequenced message gets
}

// NewBuilder returns a Builder for the node's session bdSeq.
func NewBuilder(group, node string, bdSeq uint64) *Builder {
	return &Builder{Group: group, Node: node, BdSeq: bdSeq}
}

// SetSeq makes the next sequenced message carry seq (mod 256): a way for
// tests to produce a gap.
func (b *Builder) SetSeq(seq uint64) { b.seq = seq % 256 }

func (b *Builder) now() uint64 {
	if b.Now != nil {
		return uint64(b.Now().UnixMilli())
	}
	return uint64(time.Now().UnixMilli())
}

func (b *Builder) topic(typ, device string) string {
	return Topic{Group: b.Group, Type: typ, Node: b.Node, Device: device}.String()
}

func (b *Builder) sequenced(typ, device string, metrics []*Payload_Metric) (string, []byte, error) {
	p := &Payload{}
	p.SetTimestamp(b.now())
	p.SetSeq(b.seq)
	b.seq = (b.seq + 1) % 256
	p.SetMetrics(metrics)
	out, err := proto.Marshal(p)
	if err != nil {
		return "", nil, fmt.Errorf("sparkplug %s for %s/%s: %w", typ, b.Group, b.Node, err)
	}
	return b.topic(typ, device), out, nil
}

func (b *Builder) bdSeqMetric() *Payload_Metric {
	m := &Payload_Metric{}
	m.SetName("bdSeq")
	m.SetDatatype(uint32(DataType_Int64))
	m.SetLongValue(b.BdSeq)
	return m
}

// NBirth starts the session: seq restarts at 0 and the bdSeq metric is put
// first.
func (b *Builder) NBirth(metrics ...*Payload_Metric) (string, []byte, error) {
	b.seq = 0
	all := make([]*Payload_Metric, 0, len(metrics)+1)
	all = append(all, b.bdSeqMetric())
	all = append(all, metrics...)
	return b.sequenced(NBIRTH, "", all)
}

// NData reports node metrics.
func (b *Builder) NData(metrics ...*Payload_Metric) (string, []byte, error) {
	return b.sequenced(NDATA, "", metrics)
}

// DBirth announces a device and its metrics.
func (b *Builder) DBirth(device string, metrics ...*Payload_Metric) (string, []byte, error) {
	return b.sequenced(DBIRTH, device, metrics)
}

// DData reports device metrics.
func (b *Builder) DData(device string, metrics ...*Payload_Metric) (string, []byte, error) {
	return b.sequenced(DDATA, device, metrics)
}

// DDeath reports that a device went away.
func (b *Builder) DDeath(device string) (string, []byte, error) {
	return b.sequenced(DDEATH, device, nil)
}

// NDeath is the node's death certificate (its MQTT will): bdSeq, no seq,
// no timestamp requirement.
func (b *Builder) NDeath() (string, []byte, error) {
	p := &Payload{}
	p.SetTimestamp(b.now())
	p.SetMetrics([]*Payload_Metric{b.bdSeqMetric()})
	out, err := proto.Marshal(p)
	if err != nil {
		return "", nil, fmt.Errorf("sparkplug NDEATH for %s/%s: %w", b.Group, b.Node, err)
	}
	return b.topic(NDEATH, ""), out, nil
}
