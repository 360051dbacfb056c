package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

func TestExtract(t *testing.T) {
	t.Parallel()
	doc := map[string]any{"temp": 21.5, "env": map[string]any{"hum": 40, "a/b": -3, "m~n": 7}, "list": []any{1, 2.5, "x"},
		"s": "warm", "n": nil, "b": true}
	js, _ := json.Marshal(doc)
	cb, _ := cbor.Marshal(doc)
	cases := []struct {
		path string
		want float64
		err  error
	}{
		{"temp", 21.5, nil}, {"/temp", 21.5, nil}, {"env.hum", 40, nil}, {"/env/hum", 40, nil},
		{"/env/a~1b", -3, nil}, {"/env/m~0n", 7, nil}, {"list.1", 2.5, nil}, {"/list/0", 1, nil},
		{"list.2", 0, errNotNumber}, {"list.3", 0, errMissing}, {"s", 0, errNotNumber}, {"n", 0, errMissing},
		{"b", 0, errNotNumber}, {"nope", 0, errMissing}, {"temp.x", 0, errMissing}, {"env", 0, errNotNumber},
	}
	for _, f := range []format{fmtJSON, fmtCBOR} {
		payload := js
		if f == fmtCBOR {
			payload = cb
		}
		for _, c := range cases {
			p, err := ParsePath(c.path)
			if err != nil {
				t.Fatal(err)
			}
			v, err := extractNumber(f, payload, p)
			if !errors.Is(err, c.err) || (err == nil && v != c.want) {
				t.Errorf("format %d %q: %v %v, want %v %v", f, c.path, v, err, c.want, c.err)
			}
		}
	}
	// a bare value (Shelly-style text payload), NaN in CBOR, truncation
	if v, err := extractNumber(fmtJSON, []byte(" 42.5\n"), Path{raw: "."}); v != 42.5 || err != nil {
		t.Errorf("bare value: %v %v", v, err)
	}
	nan, _ := cbor.Marshal(map[string]any{"temp": math.NaN()})
	if _, err := extractNumber(fmtCBOR, nan, mustPath("temp")); !errors.Is(err, errNonFinite) {
		t.Errorf("NaN: %v", err)
	}
	if _, err := extractNumber(fmtCBOR, cb[:len(cb)-2], mustPath("temp")); !errors.Is(err, errMalformed) {
		t.Errorf("truncated CBOR: %v", err)
	}
	if _, err := extractNumber(fmtJSON, []byte(`{"temp":1e999}`), mustPath("temp")); !errors.Is(err, errNonFinite) {
		t.Errorf("overflow: %v", err)
	}
	// indefinite-length CBOR goes through the decoder
	indef := []byte{0xbf, 0x64, 't', 'e', 'm', 'p', 0xf9, 0x3c, 0x00, 0xff}
	if v, err := extractNumber(fmtCBOR, indef, mustPath("temp")); v != 1 || err != nil {
		t.Errorf("indefinite map: %v %v", v, err)
	}
}

func mustPath(s string) Path {
	p, err := ParsePath(s)
	if err != nil {
		panic(err)
	}
	return p
}

func TestSenML(t *testing.T) {
	t.Parallel()
	pack := `[{"bn":"urn:dev:1:","bt":1.7e9,"n":"temp","v":21.5},{"n":"hum","v":40},{"n":"door","vb":true}]`
	for name, want := range map[string]float64{"temp": 21.5, "urn:dev:1:hum": 40} {
		if v, err := extractNumber(fmtSenMLJSON, []byte(pack), mustPath(name)); v != want || err != nil {
			t.Errorf("%s: %v %v", name, v, err)
		}
	}
	if _, err := extractNumber(fmtSenMLJSON, []byte(pack), mustPath("door")); !errors.Is(err, errNotNumber) {
		t.Errorf("door: %v", err)
	}
	cb, _ := cbor.Marshal([]map[int]any{{-2: "urn:dev:1:", 0: "temp", 2: 22.5}})
	if v, err := extractNumber(fmtSenMLCBOR, cb, mustPath("temp")); v != 22.5 || err != nil {
		t.Errorf("senml+cbor: %v %v", v, err)
	}
	if f := formatOf(fmtUnknown, nil, cb); f != fmtSenMLCBOR {
		t.Errorf("sniffed %d", f)
	}
	if f := formatOf(fmtUnknown, []byte("application/senml+json; charset=utf-8"), []byte(pack)); f != fmtSenMLJSON {
		t.Errorf("content-type: %d", f)
	}
}

// slowNumber is the oracle: decode everything, then walk.
func slowNumber(f format, b []byte, p Path) (float64, error, bool) {
	var v any
	switch f {
	case fmtJSON:
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if dec.Decode(&v) != nil || dec.More() {
			return 0, nil, false
		}
		if _, err := dec.Token(); err == nil {
			return 0, nil, false
		}
	case fmtCBOR:
		if slowDecMode.Unmarshal(b, &v) != nil {
			return 0, nil, false
		}
	}
	x, err := walkAny(v, p.segs)
	if err != nil {
		return 0, err, true
	}
	n, err := anyNumber(x)
	if err == nil && (math.IsNaN(n) || math.IsInf(n, 0)) {
		err = errNonFinite
	}
	return n, err, true
}

// FuzzExtract: the in-place walkers never panic, and wherever the payload
// decodes they agree with decoding it (fxamacker/cbor, encoding/json).
func FuzzExtract(f *testing.F) {
	doc := map[string]any{"temp": 21.5, "env": map[string]any{"hum": 40}, "list": []any{1, -2.5, "x", nil}}
	js, _ := json.Marshal(doc)
	cb, _ := cbor.Marshal(doc)
	for _, p := range []string{"temp", "/env/hum", "list.1", "list.3", ".", "x"} {
		f.Add(js, p, false)
		f.Add(cb, p, true)
	}
	f.Add([]byte{0xbf, 0x64, 't', 'e', 'm', 'p', 0xf9, 0x3c, 0x00, 0xff}, "temp", true)
	f.Add([]byte(`{"temp":1,"temp":2}`), "temp", false)
	f.Add([]byte{0xa1, 0x61, 'a', 0xc2, 0x42, 0x01, 0x00}, "a", true)
	f.Fuzz(func(t *testing.T, data []byte, path string, isCBOR bool) {
		p, err := ParsePath(path)
		if err != nil {
			return
		}
		fm := fmtJSON
		if isCBOR {
			fm = fmtCBOR
		}
		got, gerr := extractNumber(fm, data, p)
		_, _ = appendText(nil, fm, data, p)
		_, _ = extractNumber(fmtSenMLJSON, data, p)
		_, _ = extractNumber(fmtSenMLCBOR, data, p)
		want, werr, ok := slowNumber(fm, data, p)
		if !ok {
			return
		}
		if !errors.Is(gerr, werr) && !(gerr == nil && werr == nil) {
			t.Fatalf("%q on %x: walker %v %v, decoder %v %v", path, data, got, gerr, want, werr)
		}
		if gerr == nil && got != want && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Fatalf("%q on %x: walker %v, decoder %v", path, data, got, want)
		}
	})
}

// FuzzConfig: the loader never panics; a config it accepts builds engines
// that take arbitrary records without panicking.
func FuzzConfig(f *testing.F) {
	f.Add("aggregations:\n- {name: a, source: s, fields: [{path: x}], window: {type: hopping, size: 1m, advance: 20s}, aggregates: [count, p99, stddev]}\n", []byte(`{"x":1}`))
	f.Add("aggregations:\n- {name: a, source: s, fields: [{path: /x}], window: {type: session, gap: 1s}, aggregates: [first, last], early_results: true, side_topic: q}\n", []byte(`{"x":1}`))
	f.Add("aggregations:\n- {name: a, source: s, fields: [{path: x}], deadband: {delta: 0.5, heartbeat: 1m}, group_by: {header: h}}\n", []byte{0xa1, 0x61, 'x', 0x01})
	f.Add("brokers: []\n", []byte(nil))
	f.Fuzz(func(t *testing.T, yml string, payload []byte) {
		cfg, err := ParseConfig([]byte(yml))
		if err != nil {
			return
		}
		if err := cfg.Validate(); err != nil {
			if strings.Contains(err.Error(), "\n") && len(err.Error()) > 2000 {
				t.Fatalf("unreadable error: %v", err)
			}
			return
		}
		for i := range cfg.Aggregations {
			e, err := New(&cfg.Aggregations[i], func() time.Time { return time.UnixMilli(refBase) })
			if err != nil {
				t.Fatalf("validated config rejected by New: %v", err)
			}
			e.Assign([]int32{0})
			for j := int64(0); j < 3; j++ {
				e.Process(&Record{Partition: 0, Offset: j, Key: []byte("k"), Value: payload, Timestamp: refBase + j*40_000,
					Headers: []Header{{Key: "h", Value: []byte("v")}}}, func(Output) {})
			}
			if _, err := e.Snapshot(); err != nil {
				t.Fatal(err)
			}
		}
	})
}
