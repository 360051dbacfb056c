package sparkplug

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// renderCases are payloads covering every value shape; the fuzz target seeds
// from them too.
func renderCases() []*Payload {
	le := func(size int, vals ...uint64) []byte {
		b := make([]byte, 0, size*len(vals))
		for _, v := range vals {
			switch size {
			case 1:
				b = append(b, byte(v))
			case 2:
				b = binary.LittleEndian.AppendUint16(b, uint16(v))
			case 4:
				b = binary.LittleEndian.AppendUint32(b, uint32(v))
			case 8:
				b = binary.LittleEndian.AppendUint64(b, v)
			}
		}
		return b
	}
	ds := &Payload_DataSet{}
	ds.SetColumns([]string{"i", "s", "f"})
	ds.SetTypes([]uint32{uint32(DataType_Int16), uint32(DataType_String), uint32(DataType_Float)})
	vals := make([]*Payload_DataSet_DataSetValue, 4)
	for i := range vals {
		vals[i] = &Payload_DataSet_DataSetValue{}
	}
	vals[0].SetIntValue(0xFFFF) // Int16 -1, truncated encoding
	vals[1].SetStringValue("a\"b")
	vals[2].SetFloatValue(1.5)
	vals[3].SetExtensionValue(&Payload_DataSet_DataSetValue_DataSetValueExtension{})
	row := &Payload_DataSet_Row{}
	row.SetElements(vals)
	ds.SetRows([]*Payload_DataSet_Row{row})

	tp := &Payload_Template{}
	tp.SetTemplateRef("Motor")
	tp.SetVersion("1")
	par := &Payload_Template_Parameter{}
	par.SetName("max")
	par.SetType(uint32(DataType_Int32))
	par.SetIntValue(uint32(0xFFFFFFFE))
	tp.SetParameters([]*Payload_Template_Parameter{par})
	tp.SetMetrics([]*Payload_Metric{MustMetric("speed", DataType_Double, 3.0)})

	props := &Payload_PropertySet{}
	pv1, pv2 := &Payload_PropertyValue{}, &Payload_PropertyValue{}
	pv1.SetType(uint32(DataType_String))
	pv1.SetStringValue("°C")
	inner := &Payload_PropertySet{}
	pvi := &Payload_PropertyValue{}
	pvi.SetType(uint32(DataType_Boolean))
	pvi.SetBooleanValue(true)
	inner.SetKeys([]string{"on"})
	inner.SetValues([]*Payload_PropertyValue{pvi})
	pv2.SetType(uint32(DataType_PropertySet))
	pv2.SetPropertysetValue(inner)
	props.SetKeys([]string{"engUnit", "nested"})
	props.SetValues([]*Payload_PropertyValue{pv1, pv2})
	withProps := MustMetric("p", DataType_Int8, int8(-5))
	withProps.SetProperties(props)

	p := &Payload{}
	p.SetTimestamp(1700000000000)
	p.SetSeq(5)
	p.SetMetrics([]*Payload_Metric{
		withProps,
		MustMetric("i16", DataType_Int16, int16(-300)),
		MustMetric("i32", DataType_Int32, int32(math.MinInt32)),
		MustMetric("i64", DataType_Int64, int64(-9)),
		MustMetric("u64", DataType_UInt64, uint64(math.MaxUint64)),
		MustMetric("u32", DataType_UInt32, uint32(math.MaxUint32)),
		MustMetric("f", DataType_Float, float32(0.1)),
		MustMetric("nan", DataType_Double, math.NaN()),
		MustMetric("inf", DataType_Double, math.Inf(-1)),
		MustMetric("b", DataType_Boolean, true),
		MustMetric("s", DataType_String, "line\nbreak\x01\u2028"),
		MustMetric("bad-utf8", DataType_Text, "a\xffb"),
		MustMetric("raw", DataType_Bytes, []byte{0, 1, 2, 255}),
		MustMetric("i8a", DataType_Int8Array, le(1, 0xFF, 1)),
		MustMetric("u16a", DataType_UInt16Array, le(2, 65535, 2)),
		MustMetric("i32a", DataType_Int32Array, le(4, 0xFFFFFFFD)),
		MustMetric("i64a", DataType_Int64Array, le(8, math.MaxUint64)),
		MustMetric("fa", DataType_FloatArray, le(4, uint64(math.Float32bits(2.5)))),
		MustMetric("da", DataType_DoubleArray, le(8, math.Float64bits(-0.5))),
		MustMetric("dta", DataType_DateTimeArray, le(8, 1700000000000)),
		MustMetric("short", DataType_Int32Array, []byte{1, 2, 3}),
		MustMetric("sa", DataType_StringArray, []byte("ab\x00\x00c\x00")),
		MustMetric("ba", DataType_BooleanArray, []byte{0x0C, 0x00, 0x00, 0x00, 0x34, 0xD0}), // the spec's example
		MustMetric("ba-short", DataType_BooleanArray, []byte{9, 0, 0, 0, 0xFF}),
		MustMetric("ds", DataType_DataSet, ds),
		MustMetric("tpl", DataType_Template, tp),
		MustMetric("null", DataType_Double, nil),
		MustMetric("dt", DataType_DateTime, int64(1700000000123)),
	})
	p.SetUuid("u-1")
	p.SetBody([]byte("hi"))
	return []*Payload{p, {}}
}

func TestRenderJSONValues(t *testing.T) {
	t.Parallel()
	p := renderCases()[0]
	js, err := RenderJSON(Topic{Group: "g", Type: NDATA, Node: "n"}, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(js) {
		t.Fatalf("invalid JSON:\n%s", js)
	}
	var doc struct {
		Group, Type, Node string
		Device            *string
		Timestamp, Seq    uint64
		UUID              string
		Body              string
		Metrics           []map[string]json.RawMessage
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Group != "g" || doc.Type != "NDATA" || doc.Node != "n" || doc.Device != nil || doc.Seq != 5 ||
		doc.Timestamp != 1700000000000 || doc.UUID != "u-1" || doc.Body != "aGk=" {
		t.Fatalf("envelope %+v", doc)
	}
	want := map[string]string{
		"p":        `-5`,
		"i16":      `-300`,
		"i32":      `-2147483648`,
		"i64":      `-9`,
		"u64":      `18446744073709551615`,
		"u32":      `4294967295`,
		"f":        `0.1`,
		"nan":      `"NaN"`,
		"inf":      `"-Infinity"`,
		"b":        `true`,
		"s":        `"line\nbreak\u0001\u2028"`,
		"bad-utf8": `"a\ufffdb"`,
		"raw":      `"AAEC/w=="`,
		"i8a":      `[-1,1]`,
		"u16a":     `[65535,2]`,
		"i32a":     `[-3]`,
		"i64a":     `[-1]`,
		"fa":       `[2.5]`,
		"da":       `[-0.5]`,
		"dta":      `[1700000000000]`,
		"short":    `"AQID"`,
		"sa":       `["ab","","c"]`,
		"ba":       `[false,false,true,true,false,true,false,false,true,true,false,true]`,
		"ba-short": `"CQAAAP8="`,
		"ds":       `{"columns":["i","s","f"],"types":["Int16","String","Float"],"rows":[[-1,"a\"b",1.5,null]]}`,
		"tpl":      `{"template_ref":"Motor","version":"1","is_definition":false,"parameters":[{"name":"max","type":"Int32","value":-2}],"metrics":[{"name":"speed","alias":null,"timestamp":null,"datatype":"Double","value":3,"is_null":false,"is_historical":false,"is_transient":false,"properties":null}]}`,
		"null":     `null`,
		"dt":       `1700000000123`,
	}
	keys := []string{"name", "alias", "timestamp", "datatype", "value", "is_null", "is_historical", "is_transient", "properties"}
	for _, m := range doc.Metrics {
		var name string
		_ = json.Unmarshal(m["name"], &name)
		if len(m) != len(keys) {
			t.Errorf("%s: keys %v", name, m)
		}
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: no %q", name, k)
			}
		}
		w, ok := want[name]
		if !ok {
			t.Errorf("unexpected metric %q", name)
			continue
		}
		if got := string(m["value"]); got != w {
			t.Errorf("%s: value %s, want %s", name, got, w)
		}
		delete(want, name)
	}
	if len(want) != 0 {
		t.Errorf("metrics not rendered: %v", want)
	}
	if !strings.Contains(string(js), `"properties":{"engUnit":"°C","nested":{"on":true}}`) {
		t.Errorf("properties not rendered:\n%s", js)
	}
	if !strings.Contains(string(js), `"name":"null","alias":null,"timestamp":null,"datatype":"Double","value":null,"is_null":true`) {
		t.Errorf("null metric:\n%s", js)
	}
}

// TestRenderJSONAliases checks the documented shape exactly, aliases
// resolved through the tracker.
func TestRenderJSONAliases(t *testing.T) {
	t.Parallel()
	tr := NewTracker(1)
	b := NewBuilder("plant1", "gw7", 0)
	b.Now = func() time.Time { return time.UnixMilli(1700000000000) }
	for _, step := range []func() (string, []byte, error){
		func() (string, []byte, error) {
			return b.NBirth(named("temp", 3, DataType_Double, 0.0), named("level", 4, DataType_Int16, 0))
		},
		func() (string, []byte, error) { return b.DBirth("pump", named("rpm", 9, DataType_UInt32, 0)) },
	} {
		topic, raw, err := step()
		if err != nil {
			t.Fatal(err)
		}
		p, _ := Decode(raw)
		tr.Observe(topicOf(t, topic), p)
	}
	m := alias(t, 3, DataType_Unknown, 21.5)
	m.SetTimestamp(1700000000001)
	topic, raw, err := b.NData(m, alias(t, 4, DataType_Unknown, int32(-2)), alias(t, 77, DataType_Unknown, true))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := Decode(raw)
	js, err := RenderJSON(topicOf(t, topic), p, tr)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"group":"plant1","type":"NDATA","node":"gw7","device":null,"timestamp":1700000000000,"seq":2,"uuid":null,"body":null,"metrics":[` +
		`{"name":"temp","alias":3,"timestamp":1700000000001,"datatype":"Double","value":21.5,"is_null":false,"is_historical":false,"is_transient":false,"properties":null},` +
		`{"name":"level","alias":4,"timestamp":null,"datatype":"Int16","value":-2,"is_null":false,"is_historical":false,"is_transient":false,"properties":null},` +
		`{"name":null,"alias":77,"timestamp":null,"datatype":"Unknown","value":true,"is_null":false,"is_historical":false,"is_transient":false,"properties":null}]}`
	if string(js) != want {
		t.Fatalf("got\n%s\nwant\n%s", js, want)
	}
	// Device messages resolve the device's aliases and the node's.
	topic, raw, _ = b.DData("pump", alias(t, 9, DataType_Unknown, uint32(1500)), alias(t, 3, DataType_Unknown, 1.0))
	p, _ = Decode(raw)
	js, _ = RenderJSON(topicOf(t, topic), p, tr)
	for _, s := range []string{`"device":"pump"`, `"name":"rpm","alias":9`, `"datatype":"UInt32","value":1500`, `"name":"temp","alias":3`} {
		if !strings.Contains(string(js), s) {
			t.Errorf("no %s in\n%s", s, js)
		}
	}
}

func TestRenderJSONDepthGuard(t *testing.T) {
	t.Parallel()
	// A hand-built cycle must not recurse forever.
	tp := &Payload_Template{}
	m := MustMetric("loop", DataType_Template, tp)
	tp.SetMetrics([]*Payload_Metric{m})
	if _, err := RenderJSON(Topic{Type: NDATA}, payloadWithSeq(0, m), nil); err == nil {
		t.Fatal("cycle rendered")
	}
	if _, err := RenderJSON(Topic{}, nil, nil); err == nil {
		t.Fatal("nil payload rendered")
	}
}

// TestRenderArraysSpecExamples uses the examples of the Sparkplug 3.0 array
// appendix that agree with its text. Its Int8Array example (-23 → 0xEF), its
// FloatArray and DoubleArray examples (big-endian bytes under a
// "little-endian" heading) and its DateTimeArray example (12 bytes for two
// 8-byte values) do not, and are left out.
func TestRenderArraysSpecExamples(t *testing.T) {
	t.Parallel()
	tests := []struct {
		dt   DataType
		in   []byte
		want string
	}{
		{DataType_Int16Array, []byte{0xD0, 0x8A, 0x30, 0x75}, `[-30000,30000]`},
		{DataType_Int32Array, []byte{0xFF, 0xFF, 0xFF, 0xFF, 0xFA, 0xAF, 0xCB, 0x12}, `[-1,315338746]`},
		{DataType_Int64Array, []byte{0xCE, 0x06, 0x72, 0xAC, 0x18, 0x9C, 0xBA, 0xC4, 0xC4, 0xBA, 0x9C, 0x18, 0xAC, 0x72, 0x06, 0xCE},
			`[-4270929666821191986,-3601064768563266876]`},
		{DataType_UInt8Array, []byte{0x17, 0xFA}, `[23,250]`},
		{DataType_UInt16Array, []byte{0x1E, 0x00, 0x88, 0xCC}, `[30,52360]`},
		{DataType_UInt32Array, []byte{0x34, 0x00, 0x00, 0x00, 0x49, 0xFB, 0x55, 0xC4}, `[52,3293969225]`},
		{DataType_UInt64Array, []byte{0x34, 0, 0, 0, 0, 0, 0, 0, 0xD9, 0x9E, 0x02, 0xD1, 0xB2, 0x76, 0x37, 0xE4}, `[52,16444743074749521625]`},
		{DataType_StringArray, []byte("ABC\x00hello\x00"), `["ABC","hello"]`},
	}
	for _, tc := range tests {
		if got := string(appendBytes(nil, tc.in, uint32(tc.dt))); got != tc.want {
			t.Errorf("%s: %s, want %s", DataTypeName(uint32(tc.dt)), got, tc.want)
		}
	}
}
