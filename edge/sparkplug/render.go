package sparkplug

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"math"
	"strconv"
	"unicode/utf8"
)

// maxRenderDepth stops RenderJSON on payloads built by hand with cycles or
// absurd nesting; decoded payloads never come near it (Limits.MaxDepth).
const maxRenderDepth = 64

var errRenderDepth = errors.New("sparkplug render: templates, data sets or property sets nested deeper than 64")

// dataTypeNames are the Sparkplug datatype names used in the JSON rendering,
// indexed by the datatype number.
var dataTypeNames = [...]string{
	"Unknown", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64",
	"Float", "Double", "Boolean", "String", "DateTime", "Text", "UUID", "DataSet", "Bytes",
	"File", "Template", "PropertySet", "PropertySetList", "Int8Array", "Int16Array",
	"Int32Array", "Int64Array", "UInt8Array", "UInt16Array", "UInt32Array", "UInt64Array",
	"FloatArray", "DoubleArray", "BooleanArray", "StringArray", "DateTimeArray",
}

// DataTypeName returns the Sparkplug name of a datatype number ("Double"),
// or "Type(n)" for a number the schema does not define.
func DataTypeName(dt uint32) string {
	if int(dt) < len(dataTypeNames) {
		return dataTypeNames[dt]
	}
	return "Type(" + strconv.FormatUint(uint64(dt), 10) + ")"
}

type resolved struct {
	name     string
	datatype uint32
	ok       bool
}

// RenderJSON renders a decoded payload as one JSON object for consumers that
// cannot read protobuf. Aliases without a name, and missing datatypes, are
// resolved through t's birth tables (t may be nil). Every key is always
// present; absent values are null:
//
//	{"group": "plant1", "type": "NDATA", "node": "gw7", "device": null,
//	 "timestamp": 1700000000000, "seq": 5, "uuid": null, "body": null,
//	 "metrics": [
//	  {"name": "temp", "alias": 3, "timestamp": 1700000000000,
//	   "datatype": "Double", "value": 21.5, "is_null": false,
//	   "is_historical": false, "is_transient": false, "properties": null}]}
//
// device is null for node messages. name is null when the metric has none
// and its alias is not known; datatype is "Unknown" when neither the metric
// nor a birth gives one. Timestamps are milliseconds since the Unix epoch, as
// sent. Values follow the datatype:
//
//   - Int8/16/32/64: signed numbers (two's complement as Sparkplug sends
//     them); other integers, DateTime included: unsigned numbers, exact even
//     beyond 2^53.
//   - Float, Double: numbers; NaN and infinities as the strings "NaN",
//     "Infinity", "-Infinity".
//   - Boolean: true/false. String, Text, UUID: strings (invalid UTF-8
//     replaced by U+FFFD).
//   - Bytes, File, and arrays whose length does not fit their element size
//     (or, for BooleanArray, its count): base64 strings (standard alphabet,
//     padded).
//   - Int8Array … DoubleArray, DateTimeArray (little-endian packed):
//     arrays of numbers; BooleanArray (uint32 count, then bits, first value
//     in the high bit): array of booleans; StringArray (NUL-terminated):
//     array of strings.
//   - DataSet: {"columns": [...], "types": ["Int32", ...], "rows": [[...], ...]}.
//   - Template: {"template_ref", "version", "is_definition", "parameters":
//     [{"name", "type", "value"}], "metrics": [metric objects as above]}.
//   - is_null true, no value, or an extension value: null.
//
// properties is an object of the metric's property set (nested sets as
// objects, set lists as arrays), or null. Metadata is not rendered.
func RenderJSON(top Topic, p *Payload, t *Tracker) ([]byte, error) {
	return AppendJSON(nil, top, p, t)
}

// AppendJSON is RenderJSON appending to dst.
func AppendJSON(dst []byte, top Topic, p *Payload, t *Tracker) ([]byte, error) {
	if p == nil {
		return dst, errors.New("sparkplug render: nil payload")
	}
	metrics := p.GetMetrics()
	if dst == nil {
		dst = make([]byte, 0, 256+224*len(metrics))
	}
	var buf [16]resolved
	var res []resolved
	if t != nil && needsResolve(metrics) {
		if len(metrics) <= len(buf) {
			res = buf[:len(metrics)]
		} else {
			res = make([]resolved, len(metrics))
		}
		t.mu.RLock()
		n, d := t.resolver(top)
		if n != nil {
			for i, m := range metrics {
				if m.HasAlias() {
					e, ok := lookup(n, d, m.GetAlias())
					res[i] = resolved{e.name, e.datatype, ok}
				}
			}
		}
		t.mu.RUnlock()
	}

	b := append(dst, `{"group":`...)
	b = appendOptString(b, top.Group, top.Group != "")
	b = append(b, `,"type":`...)
	b = appendString(b, top.Type)
	b = append(b, `,"node":`...)
	b = appendOptString(b, top.Node, top.Node != "")
	b = append(b, `,"device":`...)
	b = appendOptString(b, top.Device, top.Device != "")
	b = append(b, `,"timestamp":`...)
	b = appendOptUint(b, p.GetTimestamp(), p.HasTimestamp())
	b = append(b, `,"seq":`...)
	b = appendOptUint(b, p.GetSeq(), p.HasSeq())
	b = append(b, `,"uuid":`...)
	b = appendOptString(b, p.GetUuid(), p.HasUuid())
	b = append(b, `,"body":`...)
	if p.HasBody() {
		b = appendBase64(b, p.GetBody())
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"metrics":[`...)
	var err error
	for i, m := range metrics {
		if i > 0 {
			b = append(b, ',')
		}
		var r resolved
		if res != nil {
			r = res[i]
		}
		if b, err = appendMetric(b, m, r, 0); err != nil {
			return dst, err
		}
	}
	return append(b, "]}"...), nil
}

func needsResolve(metrics []*Payload_Metric) bool {
	for _, m := range metrics {
		if m.HasAlias() && (!m.HasName() || !m.HasDatatype()) {
			return true
		}
	}
	return false
}

func appendMetric(b []byte, m *Payload_Metric, r resolved, depth int) ([]byte, error) {
	if depth > maxRenderDepth {
		return b, errRenderDepth
	}
	b = append(b, `{"name":`...)
	switch {
	case m.HasName():
		b = appendString(b, m.GetName())
	case r.ok:
		b = appendString(b, r.name)
	default:
		b = append(b, "null"...)
	}
	b = append(b, `,"alias":`...)
	b = appendOptUint(b, m.GetAlias(), m.HasAlias())
	b = append(b, `,"timestamp":`...)
	b = appendOptUint(b, m.GetTimestamp(), m.HasTimestamp())
	dt := m.GetDatatype()
	if !m.HasDatatype() && r.ok {
		dt = r.datatype
	}
	b = append(b, `,"datatype":`...)
	b = appendString(b, DataTypeName(dt))
	b = append(b, `,"value":`...)
	var err error
	if b, err = appendMetricValue(b, m, dt, depth); err != nil {
		return b, err
	}
	b = append(b, `,"is_null":`...)
	b = strconv.AppendBool(b, m.GetIsNull())
	b = append(b, `,"is_historical":`...)
	b = strconv.AppendBool(b, m.GetIsHistorical())
	b = append(b, `,"is_transient":`...)
	b = strconv.AppendBool(b, m.GetIsTransient())
	b = append(b, `,"properties":`...)
	if m.HasProperties() {
		if b, err = appendPropertySet(b, m.GetProperties(), depth+1); err != nil {
			return b, err
		}
	} else {
		b = append(b, "null"...)
	}
	return append(b, '}'), nil
}

func appendMetricValue(b []byte, m *Payload_Metric, dt uint32, depth int) ([]byte, error) {
	if m.GetIsNull() {
		return append(b, "null"...), nil
	}
	switch m.WhichValue() {
	case Payload_Metric_IntValue_case:
		return appendInt(b, uint64(m.GetIntValue()), dt), nil
	case Payload_Metric_LongValue_case:
		return appendInt(b, m.GetLongValue(), dt), nil
	case Payload_Metric_FloatValue_case:
		return appendFloat(b, float64(m.GetFloatValue()), 32), nil
	case Payload_Metric_DoubleValue_case:
		return appendFloat(b, m.GetDoubleValue(), 64), nil
	case Payload_Metric_BooleanValue_case:
		return strconv.AppendBool(b, m.GetBooleanValue()), nil
	case Payload_Metric_StringValue_case:
		return appendString(b, m.GetStringValue()), nil
	case Payload_Metric_BytesValue_case:
		return appendBytes(b, m.GetBytesValue(), dt), nil
	case Payload_Metric_DatasetValue_case:
		return appendDataSet(b, m.GetDatasetValue(), depth+1)
	case Payload_Metric_TemplateValue_case:
		return appendTemplate(b, m.GetTemplateValue(), depth+1)
	}
	return append(b, "null"...), nil
}

// appendInt renders an integer carried in int_value or long_value; signed
// datatypes arrive as two's complement, and Int8/Int16 are read from the low
// bits so that both the sign-extended and the truncated encodings found in
// the field come out right.
func appendInt(b []byte, v uint64, dt uint32) []byte {
	switch DataType(dt) {
	case DataType_Int8:
		return strconv.AppendInt(b, int64(int8(v)), 10)
	case DataType_Int16:
		return strconv.AppendInt(b, int64(int16(v)), 10)
	case DataType_Int32:
		return strconv.AppendInt(b, int64(int32(v)), 10)
	case DataType_Int64:
		return strconv.AppendInt(b, int64(v), 10)
	case DataType_Boolean:
		return strconv.AppendBool(b, v != 0)
	}
	return strconv.AppendUint(b, v, 10)
}

func appendFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Infinity"`...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, bits)
}

// appendBytes renders bytes_value: arrays as JSON arrays, the rest base64.
func appendBytes(b []byte, v []byte, dt uint32) []byte {
	size := 0
	switch DataType(dt) {
	case DataType_Int8Array, DataType_UInt8Array:
		size = 1
	case DataType_Int16Array, DataType_UInt16Array:
		size = 2
	case DataType_Int32Array, DataType_UInt32Array, DataType_FloatArray:
		size = 4
	case DataType_Int64Array, DataType_UInt64Array, DataType_DoubleArray, DataType_DateTimeArray:
		size = 8
	case DataType_StringArray:
		return appendStringArray(b, v)
	case DataType_BooleanArray:
		return appendBooleanArray(b, v)
	}
	if size == 0 || len(v)%size != 0 {
		return appendBase64(b, v)
	}
	b = append(b, '[')
	for i := 0; i < len(v); i += size {
		if i > 0 {
			b = append(b, ',')
		}
		e := v[i : i+size]
		switch DataType(dt) {
		case DataType_Int8Array:
			b = strconv.AppendInt(b, int64(int8(e[0])), 10)
		case DataType_UInt8Array:
			b = strconv.AppendUint(b, uint64(e[0]), 10)
		case DataType_Int16Array:
			b = strconv.AppendInt(b, int64(int16(binary.LittleEndian.Uint16(e))), 10)
		case DataType_UInt16Array:
			b = strconv.AppendUint(b, uint64(binary.LittleEndian.Uint16(e)), 10)
		case DataType_Int32Array:
			b = strconv.AppendInt(b, int64(int32(binary.LittleEndian.Uint32(e))), 10)
		case DataType_UInt32Array:
			b = strconv.AppendUint(b, uint64(binary.LittleEndian.Uint32(e)), 10)
		case DataType_FloatArray:
			b = appendFloat(b, float64(math.Float32frombits(binary.LittleEndian.Uint32(e))), 32)
		case DataType_Int64Array, DataType_DateTimeArray:
			b = strconv.AppendInt(b, int64(binary.LittleEndian.Uint64(e)), 10)
		case DataType_UInt64Array:
			b = strconv.AppendUint(b, binary.LittleEndian.Uint64(e), 10)
		case DataType_DoubleArray:
			b = appendFloat(b, math.Float64frombits(binary.LittleEndian.Uint64(e)), 64)
		}
	}
	return append(b, ']')
}

// appendBooleanArray renders a BooleanArray: a little-endian uint32 count,
// then the values packed eight to a byte, first value in the high bit. Bytes
// that do not match the count render as base64.
func appendBooleanArray(b []byte, v []byte) []byte {
	if len(v) < 4 {
		return appendBase64(b, v)
	}
	n := uint64(binary.LittleEndian.Uint32(v))
	bits := v[4:]
	if (n+7)/8 != uint64(len(bits)) {
		return appendBase64(b, v)
	}
	b = append(b, '[')
	for i := uint64(0); i < n; i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendBool(b, bits[i/8]&(0x80>>(i%8)) != 0)
	}
	return append(b, ']')
}

// appendStringArray renders NUL-terminated strings; a missing final NUL is
// tolerated.
func appendStringArray(b []byte, v []byte) []byte {
	b = append(b, '[')
	first := true
	for len(v) > 0 {
		i := 0
		for i < len(v) && v[i] != 0 {
			i++
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = appendString(b, string(v[:i]))
		if i == len(v) {
			break
		}
		v = v[i+1:]
	}
	return append(b, ']')
}

func appendDataSet(b []byte, ds *Payload_DataSet, depth int) ([]byte, error) {
	if depth > maxRenderDepth {
		return b, errRenderDepth
	}
	b = append(b, `{"columns":[`...)
	for i, c := range ds.GetColumns() {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, c)
	}
	b = append(b, `],"types":[`...)
	types := ds.GetTypes()
	for i, t := range types {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, DataTypeName(t))
	}
	b = append(b, `],"rows":[`...)
	for i, row := range ds.GetRows() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for j, v := range row.GetElements() {
			if j > 0 {
				b = append(b, ',')
			}
			var dt uint32
			if j < len(types) {
				dt = types[j]
			}
			b = appendDataSetValue(b, v, dt)
		}
		b = append(b, ']')
	}
	return append(b, "]}"...), nil
}

func appendDataSetValue(b []byte, v *Payload_DataSet_DataSetValue, dt uint32) []byte {
	switch v.WhichValue() {
	case Payload_DataSet_DataSetValue_IntValue_case:
		return appendInt(b, uint64(v.GetIntValue()), dt)
	case Payload_DataSet_DataSetValue_LongValue_case:
		return appendInt(b, v.GetLongValue(), dt)
	case Payload_DataSet_DataSetValue_FloatValue_case:
		return appendFloat(b, float64(v.GetFloatValue()), 32)
	case Payload_DataSet_DataSetValue_DoubleValue_case:
		return appendFloat(b, v.GetDoubleValue(), 64)
	case Payload_DataSet_DataSetValue_BooleanValue_case:
		return strconv.AppendBool(b, v.GetBooleanValue())
	case Payload_DataSet_DataSetValue_StringValue_case:
		return appendString(b, v.GetStringValue())
	}
	return append(b, "null"...)
}

func appendTemplate(b []byte, t *Payload_Template, depth int) ([]byte, error) {
	if depth > maxRenderDepth {
		return b, errRenderDepth
	}
	b = append(b, `{"template_ref":`...)
	b = appendOptString(b, t.GetTemplateRef(), t.HasTemplateRef())
	b = append(b, `,"version":`...)
	b = appendOptString(b, t.GetVersion(), t.HasVersion())
	b = append(b, `,"is_definition":`...)
	b = strconv.AppendBool(b, t.GetIsDefinition())
	b = append(b, `,"parameters":[`...)
	for i, p := range t.GetParameters() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendOptString(b, p.GetName(), p.HasName())
		b = append(b, `,"type":`...)
		b = appendString(b, DataTypeName(p.GetType()))
		b = append(b, `,"value":`...)
		switch p.WhichValue() {
		case Payload_Template_Parameter_IntValue_case:
			b = appendInt(b, uint64(p.GetIntValue()), p.GetType())
		case Payload_Template_Parameter_LongValue_case:
			b = appendInt(b, p.GetLongValue(), p.GetType())
		case Payload_Template_Parameter_FloatValue_case:
			b = appendFloat(b, float64(p.GetFloatValue()), 32)
		case Payload_Template_Parameter_DoubleValue_case:
			b = appendFloat(b, p.GetDoubleValue(), 64)
		case Payload_Template_Parameter_BooleanValue_case:
			b = strconv.AppendBool(b, p.GetBooleanValue())
		case Payload_Template_Parameter_StringValue_case:
			b = appendString(b, p.GetStringValue())
		default:
			b = append(b, "null"...)
		}
		b = append(b, '}')
	}
	b = append(b, `],"metrics":[`...)
	var err error
	for i, m := range t.GetMetrics() {
		if i > 0 {
			b = append(b, ',')
		}
		// Template members are named within the template; node aliases do
		// not apply to them.
		if b, err = appendMetric(b, m, resolved{}, depth); err != nil {
			return b, err
		}
	}
	return append(b, "]}"...), nil
}

func appendPropertySet(b []byte, ps *Payload_PropertySet, depth int) ([]byte, error) {
	if depth > maxRenderDepth {
		return b, errRenderDepth
	}
	b = append(b, '{')
	keys, values := ps.GetKeys(), ps.GetValues()
	var err error
	for i := 0; i < len(keys) && i < len(values); i++ {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, keys[i])
		b = append(b, ':')
		if b, err = appendPropertyValue(b, values[i], depth); err != nil {
			return b, err
		}
	}
	return append(b, '}'), nil
}

func appendPropertyValue(b []byte, v *Payload_PropertyValue, depth int) ([]byte, error) {
	if v.GetIsNull() {
		return append(b, "null"...), nil
	}
	switch v.WhichValue() {
	case Payload_PropertyValue_IntValue_case:
		return appendInt(b, uint64(v.GetIntValue()), v.GetType()), nil
	case Payload_PropertyValue_LongValue_case:
		return appendInt(b, v.GetLongValue(), v.GetType()), nil
	case Payload_PropertyValue_FloatValue_case:
		return appendFloat(b, float64(v.GetFloatValue()), 32), nil
	case Payload_PropertyValue_DoubleValue_case:
		return appendFloat(b, v.GetDoubleValue(), 64), nil
	case Payload_PropertyValue_BooleanValue_case:
		return strconv.AppendBool(b, v.GetBooleanValue()), nil
	case Payload_PropertyValue_StringValue_case:
		return appendString(b, v.GetStringValue()), nil
	case Payload_PropertyValue_PropertysetValue_case:
		return appendPropertySet(b, v.GetPropertysetValue(), depth+1)
	case Payload_PropertyValue_PropertysetsValue_case:
		if depth+1 > maxRenderDepth {
			return b, errRenderDepth
		}
		b = append(b, '[')
		var err error
		for i, ps := range v.GetPropertysetsValue().GetPropertyset() {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendPropertySet(b, ps, depth+2); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	}
	return append(b, "null"...), nil
}

// appendOptUint and appendOptString render an optional field: its value
// when ok (set), else null.
func appendOptUint(b []byte, v uint64, ok bool) []byte {
	if !ok {
		return append(b, "null"...)
	}
	return strconv.AppendUint(b, v, 10)
}

func appendOptString(b []byte, s string, ok bool) []byte {
	if !ok {
		return append(b, "null"...)
	}
	return appendString(b, s)
}

func appendBase64(b []byte, v []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string; invalid UTF-8 becomes U+FFFD, and
// U+2028/U+2029 are escaped so the output is also safe inside JavaScript.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
