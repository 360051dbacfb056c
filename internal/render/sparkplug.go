package render

import (
	"encoding/base64"
	"errors"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// ContentSparkplug is how the edge tags Sparkplug B payloads.
const ContentSparkplug = "application/vnd.sparkplug-b+protobuf"

// sparkplugTypes names Sparkplug B 3.0 metric datatypes.
var sparkplugTypes = map[uint64]string{
	1: "Int8", 2: "Int16", 3: "Int32", 4: "Int64", 5: "UInt8", 6: "UInt16", 7: "UInt32", 8: "UInt64",
	9: "Float", 10: "Double", 11: "Boolean", 12: "String", 13: "DateTime", 14: "Text", 15: "UUID",
	16: "DataSet", 17: "Bytes", 18: "File", 19: "Template", 20: "PropertySet", 21: "PropertySetList",
}

// decodeSparkplug reads a Sparkplug B Payload (protobuf, Eclipse Tahu 3.0)
// into {timestamp, seq, uuid, metrics: [{name, alias, timestamp, datatype,
// value, ...}]}. Only the scalar metric values are decoded; a DataSet,
// Template or extension value is kept as base64 of its bytes.
func decodeSparkplug(b []byte) (map[string]any, error) {
	out := map[string]any{}
	var metrics []any
	err := fields(b, func(num protowire.Number, typ protowire.Type, v uint64, raw []byte) error {
		switch num {
		case 1:
			out["timestamp"] = v
		case 2:
			m, err := decodeMetric(raw)
			if err != nil {
				return err
			}
			metrics = append(metrics, m)
		case 3:
			out["seq"] = v
		case 4:
			out["uuid"] = string(raw)
		case 5:
			out["body"] = base64.StdEncoding.EncodeToString(raw)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if metrics == nil {
		metrics = []any{}
	}
	out["metrics"] = metrics
	return out, nil
}

func decodeMetric(b []byte) (map[string]any, error) {
	m := map[string]any{}
	var dt uint64
	var val any
	err := fields(b, func(num protowire.Number, typ protowire.Type, v uint64, raw []byte) error {
		switch num {
		case 1:
			m["name"] = string(raw)
		case 2:
			m["alias"] = v
		case 3:
			m["timestamp"] = v
		case 4:
			dt = v
		case 5:
			m["is_historical"] = v != 0
		case 6:
			m["is_transient"] = v != 0
		case 7:
			m["is_null"] = v != 0
		case 10, 11: // int_value (uint32), long_value (uint64)
			val = v
		case 12: // float_value (fixed32)
			val = jsonable(float64(math.Float32frombits(uint32(v))))
		case 13: // double_value (fixed64)
			val = jsonable(math.Float64frombits(v))
		case 14:
			val = v != 0
		case 15:
			val = string(raw)
		case 16, 17, 18, 19: // bytes, dataset, template, extension
			val = base64.StdEncoding.EncodeToString(raw)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if u, ok := val.(uint64); ok {
		// Signed types travel as two's complement in the unsigned fields.
		switch dt {
		case 1:
			val = int8(u)
		case 2:
			val = int16(u)
		case 3:
			val = int32(u)
		case 4:
			val = int64(u)
		case 13: // DateTime: ms since the epoch
		}
	}
	if dt != 0 {
		if name, ok := sparkplugTypes[dt]; ok {
			m["datatype"] = name
		} else {
			m["datatype"] = dt
		}
	}
	if val != nil {
		m["value"] = val
	}
	return m, nil
}

var errProtobuf = errors.New("not a protobuf message")

// fields walks one protobuf message: fn gets each field's number and type,
// its value for varint and fixed fields, or its bytes for length-delimited
// ones. Groups are refused (Sparkplug has none).
func fields(b []byte, fn func(protowire.Number, protowire.Type, uint64, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errProtobuf
		}
		b = b[n:]
		var v uint64
		var raw []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var x uint32
			x, n = protowire.ConsumeFixed32(b)
			v = uint64(x)
		case protowire.Fixed64Type:
			v, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			raw, n = protowire.ConsumeBytes(b)
		default:
			return errProtobuf
		}
		if n < 0 {
			return errProtobuf
		}
		b = b[n:]
		if err := fn(num, typ, v, raw); err != nil {
			return err
		}
	}
	return nil
}
