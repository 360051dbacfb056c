package render

import (
	"encoding/json"
	"math"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"google.golang.org/protobuf/encoding/protowire"
)

func TestDecode(t *testing.T) {
	t.Parallel()
	cborReading, _ := cbor.Marshal(map[string]any{"device": "d1", "temp": 21.5, "raw": []byte{1, 2}})
	// SenML CBOR uses integer labels: -2 bn, 0 n, 1 u, 2 v, 6 t, -3 bt.
	senmlCBOR, _ := cbor.Marshal([]map[int]any{{-2: "d1/", -3: 100, 0: "temp", 1: "Cel", 2: 20.5}, {0: "hum", 2: 40, 6: 2}})
	for _, tc := range []struct {
		name, ct string
		in       []byte
		format   string
		want     string
	}{
		{"cbor by header", ContentCBOR, cborReading, "cbor", `{"device":"d1","raw":"AQI=","temp":21.5}`},
		{"cbor sniffed", "", cborReading, "cbor", `{"device":"d1","raw":"AQI=","temp":21.5}`},
		{"json", ContentJSON, []byte(`{"a":1}`), "json", `{"a":1}`},
		{"senml cbor", ContentSenMLCBOR, senmlCBOR, "senml", `[{"n":"d1/temp","t":100,"u":"Cel","v":20.5},{"n":"d1/hum","t":102,"v":40}]`},
		{"senml json", ContentSenMLJSON, []byte(`[{"bn":"x:","n":"a","v":1,"bv":10}]`), "senml", `[{"n":"x:a","v":11}]`},
		{"text", "", []byte("42.5"), "json", `42.5`},
		{"plain text", "text/plain", []byte("online"), "text", `"online"`},
		{"binary", "", []byte{0xff, 0x00, 0xfe}, "base64", `"/wD+"`},
		{"empty", ContentCBOR, nil, "empty", `null`},
		{"bad cbor falls back", ContentCBOR, []byte{0xa1}, "base64", `"oQ=="`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Decode(tc.ct, tc.in)
			b, err := json.Marshal(v.Data)
			if err != nil {
				t.Fatal(err)
			}
			if v.Format != tc.format || string(b) != tc.want {
				t.Fatalf("got %s %s, want %s %s", v.Format, b, tc.format, tc.want)
			}
		})
	}
}

func TestJSONToCBOR(t *testing.T) {
	t.Parallel()
	b, err := JSONToCBOR([]byte(`{"seq":7,"temp":21.5}`))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := cbor.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["seq"] != uint64(7) || m["temp"] != 21.5 {
		t.Fatalf("%#v", m)
	}
	if _, err := JSONToCBOR([]byte("{")); err == nil {
		t.Fatal("bad JSON accepted")
	}
}

func TestSparkplug(t *testing.T) {
	t.Parallel()
	metric := func(name string, dt uint64, field protowire.Number, v uint64) []byte {
		var m []byte
		m = protowire.AppendTag(m, 1, protowire.BytesType)
		m = protowire.AppendString(m, name)
		m = protowire.AppendTag(m, 3, protowire.VarintType)
		m = protowire.AppendVarint(m, 1700000000000)
		m = protowire.AppendTag(m, 4, protowire.VarintType)
		m = protowire.AppendVarint(m, dt)
		switch field {
		case 13:
			m = protowire.AppendTag(m, 13, protowire.Fixed64Type)
			m = protowire.AppendFixed64(m, v)
		default:
			m = protowire.AppendTag(m, field, protowire.VarintType)
			m = protowire.AppendVarint(m, v)
		}
		return m
	}
	var p []byte
	p = protowire.AppendTag(p, 1, protowire.VarintType)
	p = protowire.AppendVarint(p, 1700000000001)
	for _, m := range [][]byte{
		metric("temp", 10, 13, math.Float64bits(21.5)),
		metric("delta", 3, 10, uint64(uint32(0xFFFFFFFE))), // Int32 -2
		metric("on", 11, 14, 1),
	} {
		p = protowire.AppendTag(p, 2, protowire.BytesType)
		p = protowire.AppendBytes(p, m)
	}
	p = protowire.AppendTag(p, 3, protowire.VarintType)
	p = protowire.AppendVarint(p, 7)

	v := Decode(ContentSparkplug, p)
	b, _ := json.Marshal(v.Data)
	want := `{"metrics":[{"datatype":"Double","name":"temp","timestamp":1700000000000,"value":21.5},` +
		`{"datatype":"Int32","name":"delta","timestamp":1700000000000,"value":-2},` +
		`{"datatype":"Boolean","name":"on","timestamp":1700000000000,"value":true}],"seq":7,"timestamp":1700000000001}`
	if v.Format != "sparkplug" || string(b) != want {
		t.Fatalf("got %s %s\nwant %s", v.Format, b, want)
	}
	if v := Decode(ContentSparkplug, []byte{0xff, 0xff}); v.Format != "base64" {
		t.Fatalf("garbage as sparkplug: %+v", v)
	}
}
