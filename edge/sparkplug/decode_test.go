package sparkplug

import (
	"bytes"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func bytesContains(b []byte, s string) bool { return bytes.Contains(b, []byte(s)) }

func mustMarshal(t testing.TB, p *Payload) []byte {
	t.Helper()
	b, err := proto.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// nestedTemplates returns a metric holding templates nested depth deep.
func nestedTemplates(depth int) *Payload_Metric {
	m := MustMetric("leaf", DataType_Int32, 1)
	for i := 0; i < depth; i++ {
		tp := &Payload_Template{}
		tp.SetMetrics([]*Payload_Metric{m})
		m = MustMetric("t", DataType_Template, tp)
	}
	return m
}

func TestDecodeRoundTrip(t *testing.T) {
	t.Parallel()
	b := NewBuilder("g", "n", 9)
	ds := &Payload_DataSet{}
	ds.SetNumOfColumns(2)
	ds.SetColumns([]string{"a", "b"})
	ds.SetTypes([]uint32{uint32(DataType_Int32), uint32(DataType_String)})
	row := &Payload_DataSet_Row{}
	v1, v2 := &Payload_DataSet_DataSetValue{}, &Payload_DataSet_DataSetValue{}
	v1.SetIntValue(uint32(0xFFFFFFFF))
	v2.SetStringValue("x")
	row.SetElements([]*Payload_DataSet_DataSetValue{v1, v2})
	ds.SetRows([]*Payload_DataSet_Row{row})
	_, raw, err := b.NBirth(named("temp", 1, DataType_Double, 21.5), MustMetric("table", DataType_DataSet, ds), nestedTemplates(3))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(p.GetMetrics()); got != 4 {
		t.Fatalf("%d metrics", got)
	}
	if !bytes.Equal(mustMarshal(t, p), raw) {
		t.Fatal("re-marshal differs")
	}
	if p.GetMetrics()[0].GetName() != "bdSeq" || bdSeqOf(p) != 9 {
		t.Fatalf("bdSeq %d", bdSeqOf(p))
	}
}

func TestDecodeLimits(t *testing.T) {
	t.Parallel()
	empties := func(n int) []byte { // n empty metrics: 2 bytes each
		return bytes.Repeat([]byte{0x12, 0x00}, n)
	}
	lim := Limits{MaxBytes: 1 << 20, MaxMetrics: 100, MaxDepth: 3, MaxElements: 150}
	manyRows := func(n int) []byte {
		ds := &Payload_DataSet{}
		rows := make([]*Payload_DataSet_Row, n)
		for i := range rows {
			rows[i] = &Payload_DataSet_Row{}
		}
		ds.SetRows(rows)
		return mustMarshal(t, payloadWithSeq(0, MustMetric("ds", DataType_DataSet, ds)))
	}
	propsDeep := func(depth int) []byte {
		ps := &Payload_PropertySet{}
		for i := 0; i < depth-1; i++ {
			v := &Payload_PropertyValue{}
			v.SetPropertysetValue(ps)
			ps = &Payload_PropertySet{}
			ps.SetKeys([]string{"k"})
			ps.SetValues([]*Payload_PropertyValue{v})
		}
		m := MustMetric("m", DataType_Int32, 1)
		m.SetProperties(ps)
		return mustMarshal(t, payloadWithSeq(0, m))
	}
	tests := []struct {
		name  string
		p     []byte
		limit bool // want ErrLimit; otherwise success
	}{
		{"metrics at the limit", empties(100), false},
		{"one metric too many", empties(101), true},
		{"templates at the depth limit", mustMarshal(t, payloadWithSeq(0, nestedTemplates(3))), false},
		{"templates one too deep", mustMarshal(t, payloadWithSeq(0, nestedTemplates(4))), true},
		{"template members count as metrics", mustMarshal(t, payloadWithSeq(0, nestedTemplates(3), nestedTemplates(3))), false},
		{"property sets at the depth limit", propsDeep(3), false},
		{"property sets one too deep", propsDeep(4), true},
		{"rows within elements", manyRows(140), false},
		{"rows past elements", manyRows(150), true},
		{"bytes over", make([]byte, 1<<20+1), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeLimits(tc.p, lim)
			if tc.limit != errors.Is(err, ErrLimit) || (!tc.limit && err != nil) {
				t.Fatalf("err = %v, want limit error %v", err, tc.limit)
			}
		})
	}
}

func TestDecodeMalformed(t *testing.T) {
	t.Parallel()
	good := mustMarshal(t, payloadWithSeq(3, MustMetric("x", DataType_String, "hello")))
	tests := map[string][]byte{
		"truncated":             good[:len(good)/2],
		"bad tag":               {0x00},
		"length past the end":   {0x12, 0x05, 0x0a},
		"varint never ends":     append([]byte{0x18}, bytes.Repeat([]byte{0xff}, 11)...),
		"group wire type":       {0x13},
		"truncated nested":      {0x12, 0x03, 0x8a, 0x01, 0x05},
		"metric name not bytes": {0x12, 0x02, 0x08, 0x01},
	}
	for name, p := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := Decode(p); err == nil {
				// The last case is legal protobuf: field 1 of Metric as a
				// varint is an unknown field, not an error.
				if name != "metric name not bytes" {
					t.Fatal("accepted")
				}
			} else if !strings.HasPrefix(err.Error(), "sparkplug payload") {
				t.Fatalf("error without context: %v", err)
			}
		})
	}
	if p, err := Decode(nil); err != nil || len(p.GetMetrics()) != 0 {
		t.Fatalf("empty payload: %v", err)
	}
	if _, err := DecodeLimits(good, Limits{}); err != nil {
		t.Fatalf("zero limits are the defaults: %v", err)
	}
	// A nil payload is an empty one to the tracker, an error to rendering.
	tr := NewTracker(1)
	if r := tr.Observe(Topic{Group: "g", Type: NDATA, Node: "n"}, nil); !r.BeforeBirth {
		t.Fatalf("nil payload: %+v", r)
	}
	tr.Observe(Topic{Group: "g", Type: NBIRTH, Node: "n"}, nil)
	tr.Restore(Topic{Group: "g", Type: DBIRTH, Node: "n", Device: "d"}, nil)
}

// TestDecodeAllocationBounded feeds the shapes that cost the most memory per
// wire byte, at the default limits, and checks the allocation stays a fixed
// multiple of the input.
func TestDecodeAllocationBounded(t *testing.T) {
	var rowsOnly []byte
	{
		var ds []byte
		for i := 0; i < DefaultLimits.MaxElements-2; i++ { // plus the metric and the data set
			ds = append(ds, 0x22, 0x00) // empty Row
		}
		m := protowire.AppendTag(nil, 17, protowire.BytesType)
		m = protowire.AppendBytes(m, ds)
		rowsOnly = protowire.AppendTag(nil, 2, protowire.BytesType)
		rowsOnly = protowire.AppendBytes(rowsOnly, m)
	}
	shapes := map[string][]byte{
		"empty metrics": bytes.Repeat([]byte{0x12, 0x00}, DefaultLimits.MaxMetrics),
		"empty rows":    rowsOnly,
	}
	for name, p := range shapes {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			out, err := Decode(p)
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			runtime.KeepAlive(out)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d bytes in, %d bytes allocated (%.0f×)", len(p), alloc, float64(alloc)/float64(len(p)))
			if alloc > 200*uint64(len(p))+1<<20 || alloc > 64<<20 {
				t.Fatalf("%d bytes allocated for %d bytes of input", alloc, len(p))
			}
		})
	}
	// One element past the limit is refused before anything is allocated
	// for it.
	over := bytes.Repeat([]byte{0x12, 0x00}, DefaultLimits.MaxMetrics+1)
	// AllocsPerRun counts the whole process: under -race the runtime now
	// and then allocates on its own during a run. The decoder's count is
	// the same every time, so the least of a few measurements is it.
	allocs := testing.AllocsPerRun(5, func() { _, _ = Decode(over) })
	for range 4 {
		allocs = min(allocs, testing.AllocsPerRun(5, func() { _, _ = Decode(over) }))
	}
	if allocs > 10 {
		t.Fatalf("refusing cost %v allocations", allocs)
	}
}

// countDecoded walks a decoded payload to check the pre-scan against what
// the protobuf library actually built.
type decodedCount struct{ metrics, elements, depth int }

func (c *decodedCount) metric(m *Payload_Metric, depth int) {
	c.metrics++
	c.elements++
	if depth > c.depth {
		c.depth = depth
	}
	if m.HasMetadata() {
		c.elements++
	}
	if m.HasExtensionValue() {
		c.elements++
	}
	if m.HasProperties() {
		c.elements++
		c.propertySet(m.GetProperties(), depth+1)
	}
	if m.HasDatasetValue() {
		c.elements++
		if depth+1 > c.depth {
			c.depth = depth + 1
		}
		for _, r := range m.GetDatasetValue().GetRows() {
			c.elements++
			for _, v := range r.GetElements() {
				c.elements++
				if v.HasExtensionValue() {
					c.elements++
				}
			}
		}
	}
	if m.HasTemplateValue() {
		c.elements++
		tp := m.GetTemplateValue()
		if depth+1 > c.depth {
			c.depth = depth + 1
		}
		for _, p := range tp.GetParameters() {
			c.elements++
			if p.HasExtensionValue() {
				c.elements++
			}
		}
		for _, sub := range tp.GetMetrics() {
			c.metric(sub, depth+1)
		}
	}
}

func (c *decodedCount) propertySet(ps *Payload_PropertySet, depth int) {
	if depth > c.depth {
		c.depth = depth
	}
	for _, v := range ps.GetValues() {
		c.elements++
		switch {
		case v.HasPropertysetValue():
			c.elements++
			c.propertySet(v.GetPropertysetValue(), depth+1)
		case v.HasPropertysetsValue():
			c.elements++
			if depth+1 > c.depth {
				c.depth = depth + 1
			}
			for _, s := range v.GetPropertysetsValue().GetPropertyset() {
				c.elements++
				c.propertySet(s, depth+1)
			}
		case v.HasExtensionValue():
			c.elements++
		}
	}
}

func fuzzSeeds(f *testing.F) {
	b := NewBuilder("g", "n", 1)
	add := func(_ string, p []byte, err error) {
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p)
	}
	add(b.NBirth(named("temp", 1, DataType_Double, 21.5), named("n", 2, DataType_Int8, -1)))
	add(b.NData(MustMetric("", DataType_Unknown, nil), MustMetric("s", DataType_StringArray, []byte("a\x00b\x00"))))
	add(b.DBirth("d", nestedTemplates(2)))
	add(b.NDeath())
	for _, p := range renderCases() {
		f.Add(mustMarshal(f, p))
	}
	f.Add([]byte{0x12, 0x00, 0x12, 0x00})
	f.Add([]byte{0x12, 0x03, 0x8a, 0x01, 0x00})
}

// FuzzDecode: no panic; whatever Decode accepts stays within the limits once
// built, re-marshals, decodes again, renders as valid JSON and goes through
// the tracker.
func FuzzDecode(f *testing.F) {
	fuzzSeeds(f)
	lim := Limits{MaxBytes: 64 << 10, MaxMetrics: 64, MaxDepth: 3, MaxElements: 256}
	tr := NewTracker(4)
	topics := []Topic{
		{Group: "g", Type: NBIRTH, Node: "n"}, {Group: "g", Type: DBIRTH, Node: "n", Device: "d"},
		{Group: "g", Type: NDATA, Node: "n"}, {Group: "g", Type: DDATA, Node: "n", Device: "d"},
		{Group: "g", Type: NDEATH, Node: "n"}, {Group: "g", Type: DDEATH, Node: "n", Device: "d"},
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := DecodeLimits(data, lim)
		if err != nil {
			return
		}
		var c decodedCount
		for _, m := range p.GetMetrics() {
			c.metric(m, 0)
		}
		if c.metrics > lim.MaxMetrics || c.elements > lim.MaxElements || c.depth > lim.MaxDepth {
			t.Fatalf("decoded %+v past limits %+v", c, lim)
		}
		again, err := proto.Marshal(p)
		if err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		lim2 := lim
		lim2.MaxBytes = 1 << 30 // unpacked repeated fields may grow
		if _, err := DecodeLimits(again, lim2); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		top := topics[len(data)%len(topics)]
		if len(data)%7 == 0 {
			tr.Restore(top, p)
		} else {
			_ = tr.Observe(top, p).Headers()
		}
		checkAccounting(t, tr)
		js, err := RenderJSON(top, p, tr)
		if err != nil {
			t.Fatalf("render: %v", err)
		}
		if !json.Valid(js) {
			t.Fatalf("invalid JSON: %s", js)
		}
	})
}

// FuzzDecodeFastPath: the fast path accepts only what proto.Unmarshal
// accepts, and builds an equal message.
func FuzzDecodeFastPath(f *testing.F) {
	fuzzSeeds(f)
	f.Add([]byte{0x12, 0x02, 0x08, 0x01})             // name as a varint: unknown field
	f.Add([]byte{0x12, 0x05, 0x6d, 0x00, 0x00, 0xc0}) // float, truncated
	f.Add([]byte{0x12, 0x04, 0x50, 0x01, 0x58, 0x02}) // int then long value
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := fastDecode(data, DefaultLimits)
		var slow Payload
		err := proto.Unmarshal(data, &slow)
		if !ok {
			return
		}
		if err != nil {
			t.Fatalf("fast path accepted what proto refuses (%v)", err)
		}
		if !proto.Equal(fast, &slow) {
			t.Fatalf("fast %v\nslow %v", fast, &slow)
		}
		a, err1 := proto.MarshalOptions{Deterministic: true}.Marshal(fast)
		b, err2 := proto.MarshalOptions{Deterministic: true}.Marshal(&slow)
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Fatalf("re-marshal differs: %x / %x (%v, %v)", a, b, err1, err2)
		}
	})
}

func TestDecodeFastPathTaken(t *testing.T) {
	t.Parallel()
	_, raw, _ := NewBuilder("g", "n", 0).NData(alias(t, 1, DataType_Unknown, 1.5), MustMetric("s", DataType_String, "x"))
	if _, ok := fastDecode(raw, DefaultLimits); !ok {
		t.Fatal("fast path declined a plain NDATA")
	}
	_, raw, _ = NewBuilder("g", "n", 0).NData(nestedTemplates(1))
	if _, ok := fastDecode(raw, DefaultLimits); ok {
		t.Fatal("fast path took a template")
	}
}
