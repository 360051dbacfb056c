package reading

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

var sample = Reading{Device: "dev-000042", Seq: 1234567, TsMs: 1763900000123, Temp: 21.375, Hum: 48.25, Vib: 0.0625}

func TestRoundTripEveryEncoding(t *testing.T) {
	t.Parallel()
	for _, e := range Encodings {
		t.Run(string(e), func(t *testing.T) {
			b, err := Encode(sample, e)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(e.ContentType(), b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if got != sample {
				t.Fatalf("round trip: got %+v, want %+v", got, sample)
			}
			// Without a content type the bytes alone must identify the format.
			got, err = Decode("", b)
			if err != nil || got != sample {
				t.Fatalf("sniffed decode: got %+v, %v", got, err)
			}
		})
	}
}

// encodedAs encodes sample in encoding e and decodes the bytes back into a T
// with unmarshal, to look at the encoding's own shape.
func encodedAs[T any](t *testing.T, e Encoding, unmarshal func([]byte, any) error) T {
	t.Helper()
	b, err := Encode(sample, e)
	if err != nil {
		t.Fatal(err)
	}
	var v T
	if err := unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCBORMapUsesSchemaKeys(t *testing.T) {
	t.Parallel()
	m := encodedAs[map[string]any](t, CBOR, cbor.Unmarshal)
	if m["device"] != "dev-000042" {
		t.Errorf("device = %v", m["device"])
	}
	// seq must be a CBOR unsigned integer, ts an integer, measurements floats.
	if v, ok := m["seq"].(uint64); !ok || v != sample.Seq {
		t.Errorf("seq = %#v, want uint64 %d", m["seq"], sample.Seq)
	}
	if v, ok := m["ts"].(uint64); !ok || int64(v) != sample.TsMs {
		t.Errorf("ts = %#v", m["ts"])
	}
	for _, k := range []string{"temp", "hum", "vib"} {
		if _, ok := m[k].(float64); !ok {
			t.Errorf("%s = %#v, want float", k, m[k])
		}
	}
}

func TestJSONMapUsesSchemaKeys(t *testing.T) {
	t.Parallel()
	m := encodedAs[map[string]any](t, JSON, json.Unmarshal)
	want := map[string]any{"device": "dev-000042", "seq": 1234567.0, "ts": 1763900000123.0, "temp": 21.375, "hum": 48.25, "vib": 0.0625}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
}

func TestSenMLCBORUsesIntegerLabels(t *testing.T) {
	t.Parallel()
	pack := encodedAs[[]map[int]any](t, SenMLCBOR, cbor.Unmarshal)
	if len(pack) != 4 {
		t.Fatalf("pack has %d records, want 4", len(pack))
	}
	if pack[0][-2] != "urn:dev:dev-000042:" {
		t.Errorf("bn (-2) = %v", pack[0][-2])
	}
	if bt, ok := pack[0][-3].(float64); !ok || bt != 1763900000.123 {
		t.Errorf("bt (-3) = %#v", pack[0][-3])
	}
	names := map[string]float64{}
	for _, rec := range pack {
		names[rec[0].(string)] = rec[2].(float64)
	}
	if names["seq"] != float64(sample.Seq) || names["temp"] != sample.Temp {
		t.Errorf("entries = %v", names)
	}
}

func TestSenMLJSONShape(t *testing.T) {
	t.Parallel()
	pack := encodedAs[[]map[string]any](t, SenMLJSON, json.Unmarshal)
	if pack[0]["bn"] != "urn:dev:dev-000042:" || pack[0]["bt"] != 1763900000.123 {
		t.Errorf("base fields = %v", pack[0])
	}
	if pack[3]["n"] != "seq" || pack[3]["v"] != float64(sample.Seq) {
		t.Errorf("seq entry = %v", pack[3])
	}
}

func TestSenMLResolvesBaseFieldsAndRelativeTime(t *testing.T) {
	t.Parallel()
	// Written by hand the way another SenML producer might: full names on
	// some records, a relative time, and a base value.
	in := `[{"bn":"urn:dev:","bt":1700000000,"n":"dev-7:temp","v":20.5,"t":0.25},
	        {"n":"dev-7:seq","v":9},{"bv":1,"n":"dev-7:hum","v":40},{"n":"other:thing","v":1,"bn":"x:"}]`
	r, err := Decode(ContentTypeSenMLJSON, []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := Reading{Device: "dev-7", Seq: 9, TsMs: 1700000000250, Temp: 20.5, Hum: 41}
	if r != want {
		t.Fatalf("got %+v, want %+v", r, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	good, _ := Encode(sample, CBOR)
	unnumbered, _ := EncodeUnnumbered(sample, CBOR, make([]byte, 100))
	unnumberedJSON, _ := EncodeUnnumbered(sample, JSON, nil)
	unnumberedSenML, _ := EncodeUnnumbered(sample, SenMLCBOR, make([]byte, 10))
	cases := []struct {
		name, ct string
		payload  []byte
		want     error
	}{
		{"truncated cbor", ContentTypeCBOR, good[:len(good)/2], ErrMalformed},
		{"garbage", "", []byte{0xff, 0x00, 0x13}, ErrMalformed},
		{"truncated json", ContentTypeJSON, []byte(`{"device":"d","seq":`), ErrMalformed},
		{"negative seq", ContentTypeJSON, []byte(`{"device":"d","seq":-1}`), ErrMalformed},
		{"fractional senml seq", ContentTypeSenMLJSON, []byte(`[{"bn":"urn:dev:d:","n":"seq","v":1.5}]`), ErrMalformed},
		{"no seq", ContentTypeCBOR, unnumbered, ErrNotReading},
		{"no seq json", ContentTypeJSON, unnumberedJSON, ErrNotReading},
		{"no seq senml", ContentTypeSenMLCBOR, unnumberedSenML, ErrNotReading},
		{"no device", ContentTypeJSON, []byte(`{"seq":3}`), ErrNotReading},
		{"senml without seq", ContentTypeSenMLJSON, []byte(`[{"bn":"urn:dev:d:","n":"temp","v":1}]`), ErrNotReading},
	}
	for _, c := range cases {
		_, err := Decode(c.ct, c.payload)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
}

func TestParseEncoding(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Encoding{"CBOR": CBOR, "json": JSON, "senml": SenMLCBOR, "senml+json": SenMLJSON} {
		if got, err := ParseEncoding(in); err != nil || got != want {
			t.Errorf("ParseEncoding(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParseEncoding("xml"); err == nil {
		t.Error("xml accepted")
	}
}

// FuzzDecode checks that no payload panics the decoder and that whatever
// decodes re-encodes to the same reading.
func FuzzDecode(f *testing.F) {
	for _, e := range Encodings {
		b, _ := Encode(sample, e)
		f.Add(e.ContentType(), b)
	}
	f.Add("", []byte(`[{"bn":"urn:dev:a:","n":"seq","v":2}]`))
	f.Fuzz(func(t *testing.T, ct string, payload []byte) {
		r, err := Decode(ct, payload)
		if err != nil {
			return
		}
		b, err := Encode(r, CBOR)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", r, err)
		}
		back, err := Decode(ContentTypeCBOR, b)
		if err != nil {
			t.Fatalf("decode re-encoded: %v", err)
		}
		if back.Device != r.Device || back.Seq != r.Seq || back.TsMs != r.TsMs {
			t.Fatalf("re-encode changed identity: %+v -> %+v", r, back)
		}
	})
}
