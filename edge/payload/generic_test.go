package payload

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestCheckJSONAndFields(t *testing.T) {
	t.Parallel()
	doc := []byte(` {"Time":"2024-05-01T12:00:00","ENERGY":{"Power":42,"Total":1.5e3},"a/b":{"~x":"y"},"arr":[1,{"k":"v"}],"esc":"q\"q","s":"\u00e9"} `)
	if err := CheckJSON(doc, &Limits{}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path string
		want Scalar
		ok   bool
	}{
		{"/Time", Scalar{Str: "2024-05-01T12:00:00", IsStr: true}, true},
		{"/ENERGY/Power", Scalar{IsNum: true, IsInt: true, Int: 42, Num: 42}, true},
		{"/ENERGY/Total", Scalar{IsNum: true, Num: 1500}, true},
		{"/a~1b/~0x", Scalar{Str: "y", IsStr: true}, true},
		{"/arr/1/k", Scalar{Str: "v", IsStr: true}, true},
		{"/esc", Scalar{Str: `q"q`, IsStr: true}, true},
		{"/s", Scalar{Str: "é", IsStr: true}, true},
		{"/arr/2", Scalar{}, false},
		{"/ENERGY", Scalar{}, false},
		{"/missing", Scalar{}, false},
	}
	for _, c := range cases {
		p, err := ParsePath(c.path)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := JSONField(doc, p)
		if ok != c.ok || got != c.want {
			t.Errorf("%s: %+v %v, want %+v %v", c.path, got, ok, c.want, c.ok)
		}
	}
	for _, bad := range []string{`{"a":`, `{"a":1} x`, `nul`, strings.Repeat("[", 17) + strings.Repeat("]", 17), "[" + strings.Repeat("1,", 1100) + "1]"} {
		if err := CheckJSON([]byte(bad), &Limits{}); err == nil {
			t.Errorf("%.40q accepted", bad)
		}
	}
}

// TestCheckJSONFieldsMatchesLookup: the single-pass lookup finds what
// JSONField finds, two fields at a time, on the document above and on
// shapes where a second walk could disagree: duplicate keys (the last
// one wins), a path that goes through a scalar, escaped keys,
// the whole document, array indexes written "01".
func TestCheckJSONFieldsMatchesLookup(t *testing.T) {
	t.Parallel()
	docs := []string{
		` {"Time":"2024-05-01T12:00:00","ENERGY":{"Power":42,"Total":1.5e3},"a/b":{"~x":"y"},"arr":[1,{"k":"v"}],"esc":"q\"q","s":"\u00e9"} `,
		`{"a":{"x":1},"a":{"t":5},"t":1,"t":2}`,
		`{"a":5,"b":{"c":[0,[1,2,{"d":"deep"}]]}}`,
		`{"k\u0065y":7,"key":8}`,
		`  1700000000123 `,
		`"2024-05-01T12:00:00Z"`,
		`[10,20,30]`,
	}
	paths := []string{"", "/Time", "/ENERGY/Power", "/ENERGY/Total", "/a~1b/~0x", "/arr/1/k", "/esc", "/s", "/arr/2", "/ENERGY",
		"/missing", "/a/t", "/a/x", "/t", "/a/c", "/b/c/1/2/d", "/b/c/01/02/d", "/key", "/0", "/2", "/3", "/-1"}
	for _, doc := range docs {
		for _, p0 := range paths {
			for _, p1 := range []string{"/t", "/key", "/b/c/1/0", ""} {
				a, _ := ParsePath(p0)
				b, _ := ParsePath(p1)
				var f JSONFields
				f.Want(0, a)
				f.Want(1, b)
				if err := CheckJSONFields([]byte(doc), &Limits{}, &f); err != nil {
					t.Fatalf("%s: %v", doc, err)
				}
				for i, path := range []Path{a, b} {
					got, ok := f.Field(i)
					want, wok := JSONField([]byte(doc), path)
					if ok != wok || got != want {
						t.Errorf("%s %q (field %d): %+v %v, JSONField %+v %v", doc, []string{p0, p1}[i], i, got, ok, want, wok)
					}
				}
			}
		}
	}
	var f JSONFields
	f.Want(0, Path{"a"})
	if err := CheckJSONFields([]byte(`{"a":1,`), &Limits{}, &f); err == nil {
		t.Fatal("truncated JSON accepted")
	}
	if _, ok := f.Field(0); ok {
		t.Fatal("a field found in a document that failed")
	}
}

func TestCBORFields(t *testing.T) {
	t.Parallel()
	doc := mustCBOR(t, map[any]any{"ts": uint64(1700000000123), "m": map[any]any{1: "one", "x": -2.5}, "l": []any{"a", int64(-3)}})
	if err := CheckCBOR(doc, &Limits{}); err != nil {
		t.Fatal(err)
	}
	v, err := CBORValue(doc, &Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]Scalar{
		"/ts":  {IsNum: true, IsInt: true, Int: 1700000000123, Num: 1700000000123},
		"/m/1": {Str: "one", IsStr: true},
		"/m/x": {IsNum: true, Num: -2.5},
		"/l/1": {IsNum: true, IsInt: true, Int: -3, Num: -3},
	} {
		p, _ := ParsePath(path)
		if got, ok := CBORField(v, p); !ok || got != want {
			t.Errorf("%s: %+v %v", path, got, ok)
		}
	}
	if _, err := JSONCompatible(v); err != nil {
		t.Fatal(err)
	}
	if err := CheckCBOR([]byte{0xa2, 0x61}, &Limits{}); err == nil {
		t.Fatal("truncated CBOR accepted")
	}
}

func TestTimeMs(t *testing.T) {
	t.Parallel()
	berlin, err := NewTimeSpec("/Time", "local", "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	auto, _ := NewTimeSpec("/t", "", "")
	secs, _ := NewTimeSpec("/t", "s", "")
	cases := []struct {
		ts   TimeSpec
		in   Scalar
		want int64
		ok   bool
	}{
		{berlin, Scalar{Str: "2024-05-01T12:00:00", IsStr: true}, 1714557600000, true},
		{berlin, Scalar{Str: "2024-01-01T12:00:00", IsStr: true}, 1704106800000, true},
		{berlin, Scalar{Str: "2024-05-01T12:00:00Z", IsStr: true}, 0, false},
		{auto, Scalar{Str: "2024-05-01T10:00:00Z", IsStr: true}, 1714557600000, true},
		{auto, Scalar{Str: "2024-05-01T10:00:00.5+00:00", IsStr: true}, 1714557600500, true},
		{auto, Scalar{IsNum: true, IsInt: true, Int: 1714557600000, Num: 1714557600000}, 1714557600000, true},
		{auto, Scalar{IsNum: true, IsInt: true, Int: 1714557600, Num: 1714557600}, 1714557600000, true},
		{auto, Scalar{IsNum: true, Num: 1714557600.25}, 1714557600250, true},
		{secs, Scalar{IsNum: true, IsInt: true, Int: 5, Num: 5}, 5000, true},
		{secs, Scalar{Str: "x", IsStr: true}, 0, false},
		{auto, Scalar{IsNum: true, Num: 1e300}, 0, false},
	}
	for i, c := range cases {
		got, err := c.ts.TimeMs(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("case %d: %d %v, want %d ok=%v", i, got, err, c.want, c.ok)
		}
	}
}

// refField walks encoding/json's document the way JSONField walks bytes.
func refField(p []byte, path Path) (Scalar, bool) {
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return Scalar{}, false
	}
	for _, seg := range path {
		switch x := v.(type) {
		case map[string]any:
			// encoding/json keeps the last duplicate; JSONField the first.
			var ok bool
			if v, ok = x[seg]; !ok {
				return Scalar{}, false
			}
		case []any:
			n, err := strconv.Atoi(seg)
			if err != nil || n < 0 || n >= len(x) {
				return Scalar{}, false
			}
			v = x[n]
		default:
			return Scalar{}, false
		}
	}
	switch x := v.(type) {
	case string:
		return Scalar{Str: x, IsStr: true}, true
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return Scalar{IsNum: true, IsInt: true, Int: i, Num: float64(i)}, true
		}
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return Scalar{}, false
		}
		return Scalar{IsNum: true, Num: f}, true
	}
	return Scalar{}, false
}

// FuzzGeneric: the generic JSON and CBOR checks never accept what the
// standard decoders refuse, field lookups agree with encoding/json (for
// documents without duplicate keys) and never panic.
func FuzzGeneric(f *testing.F) {
	f.Add([]byte(`{"a":{"b":[1,"x",{"c":2.5}]},"t":"2024-05-01T12:00:00"}`), "/a/b/2/c")
	f.Add([]byte(`[1,2,{"a":"\u0041\\"}]`), "/2/a")
	f.Add(mustCBOR(f, map[string]any{"a": []any{1, "x"}}), "/a/0")
	f.Fuzz(func(t *testing.T, p []byte, ptr string) {
		path, err := ParsePath(ptr)
		if err != nil {
			return
		}
		lim := &Limits{}
		err = CheckJSON(p, lim)
		if err != nil && json.Valid(p) && utf8.Valid(p) && !strings.Contains(err.Error(), "nested deeper") && !strings.Contains(err.Error(), "items") {
			t.Fatalf("CheckJSON refused valid JSON %q: %v", p, err)
		}
		var fs JSONFields
		fs.Want(1, path)
		if ferr := CheckJSONFields(p, lim, &fs); (ferr == nil) != (err == nil) {
			t.Fatalf("%q: CheckJSON %v, CheckJSONFields %v", p, err, ferr)
		}
		if err == nil {
			if !json.Valid(p) || !utf8.Valid(p) {
				t.Fatalf("CheckJSON accepted invalid JSON %q", p)
			}
			got, ok := JSONField(p, path)
			if fgot, fok := fs.Field(1); fok != ok || fgot != got {
				t.Fatalf("%q %s: one pass %+v %v, JSONField %+v %v", p, ptr, fgot, fok, got, ok)
			}
			if !bytes.Contains(p, []byte(`\`)) {
				want, wok := refField(p, path)
				if ok != wok || (ok && got != want && !(got.IsNum && want.IsNum && got.Num == want.Num)) {
					t.Fatalf("%q %s: got %+v %v, encoding/json %+v %v", p, ptr, got, ok, want, wok)
				}
			}
		}
		if CheckCBOR(p, lim) == nil {
			v, err := CBORValue(p, lim)
			if err != nil {
				t.Fatalf("well-formed CBOR %x does not decode: %v", p, err)
			}
			s, ok := CBORField(v, path)
			if ok {
				ts, _ := NewTimeSpec("", "", "")
				_, _ = ts.TimeMs(s)
			}
			_, _ = JSONCompatible(v)
		}
	})
}

// FuzzTimeMs: the time extractor never panics and, when it accepts text as
// RFC 3339, agrees with time.Parse.
func FuzzTimeMs(f *testing.F) {
	f.Add("2024-05-01T12:00:00", 0.0, "local", "Europe/Berlin")
	f.Add("2024-05-01T12:00:00+02:00", 1.7e12, "", "")
	f.Add("", 1714557600.5, "s", "")
	f.Fuzz(func(t *testing.T, s string, num float64, unit, zone string) {
		ts, err := NewTimeSpec("/t", unit, zone)
		if err != nil {
			return
		}
		if ms, err := ts.TimeMs(Scalar{Str: s, IsStr: true}); err == nil && (ts.Unit == UnitRFC3339) {
			want, perr := time.Parse(time.RFC3339Nano, s)
			if perr != nil || want.UnixMilli() != ms {
				t.Fatalf("%q: %d, time.Parse %v %v", s, ms, want.UnixMilli(), perr)
			}
		}
		_, _ = ts.TimeMs(Scalar{IsNum: true, Num: num})
		_, _ = ts.TimeMs(Scalar{IsNum: true, IsInt: true, Int: int64(num), Num: num})
	})
}
