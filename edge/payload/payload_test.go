package payload

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

func mustCBOR(t testing.TB, v any) []byte {
	t.Helper()
	b, err := cbor.Marshal(v)
	if err != nil {
		t.Fatalf("cbor marshal: %v", err)
	}
	return b
}

func TestDecodeValid(t *testing.T) {
	t.Parallel()
	cborReading := mustCBOR(t, map[string]any{"device": "dev-1", "seq": uint64(7), "ts": int64(1700000000123), "temp": 21.5, "hum": 40.0, "vib": 0.01})
	senmlCBOR := mustCBOR(t, []map[int]any{
		{-2: "urn:dev:dev-2:", -3: 1700000000.5, 0: "temp", 2: 20.0},
		{0: "hum", 2: 41.0},
		{0: "vib", 2: 0.2},
		{0: "seq", 2: 9},
	})
	cases := []struct {
		name, ct string
		p        []byte
		want     Reading
	}{
		{"cbor", ContentCBOR, cborReading, Reading{Device: "dev-1", Seq: 7, TimeMs: 1700000000123, HasTime: true}},
		{"json", ContentJSON, []byte(`{"device":"dev-3","seq":12,"ts":1700000000999,"temp":1,"hum":2.5,"vib":-3e-2}`), Reading{Device: "dev-3", Seq: 12, TimeMs: 1700000000999, HasTime: true}},
		{"json-no-ts", ContentJSON, []byte(`{"device":"d","seq":0}`), Reading{Device: "d"}},
		{"cbor-int-measurement", ContentCBOR, mustCBOR(t, map[string]any{"device": "d", "seq": 3, "temp": 21, "extra": []int{1}}), Reading{Device: "d", Seq: 3}},
		{"senml-cbor", ContentSenMLCBOR, senmlCBOR, Reading{Device: "dev-2", Seq: 9, TimeMs: 1700000000500, HasTime: true}},
		{"senml-json", ContentSenMLJSON, []byte(`[{"bn":"urn:dev:dev-4:","bt":1700000001.25,"n":"temp","v":3},{"n":"seq","v":4},{"n":"hum","v":5}]`), Reading{Device: "dev-4", Seq: 4, TimeMs: 1700000001250, HasTime: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Sniff(c.p); got != c.ct {
				t.Errorf("Sniff = %q, want %q", got, c.ct)
			}
			got, err := Decode(c.ct, c.p)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got != c.want {
				t.Fatalf("Decode = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestDecodeInvalid(t *testing.T) {
	t.Parallel()
	indef := []byte{0xbf, 0x63, 'd', 'e', 'v', 0x61, 'x', 0xff} // indefinite-length map
	dup := []byte{0xa2, 0x63, 's', 'e', 'q', 0x01, 0x63, 's', 'e', 'q', 0x02}
	deep := []byte{0xa1, 0x61, 'a', 0xa1, 0x61, 'a', 0xa1, 0x61, 'a', 0xa1, 0x61, 'a', 0xa1, 0x61, 'a', 0x01}
	cases := []struct {
		name, ct string
		p        []byte
		reason   string
	}{
		{"cbor-garbage", ContentCBOR, []byte{0xa3, 0x01}, "cbor"},
		{"cbor-indefinite", ContentCBOR, indef, "indefinite"},
		{"cbor-dup-key", ContentCBOR, dup, "duplicate"},
		{"cbor-deep", ContentCBOR, deep, "nested"},
		{"cbor-trailing", ContentCBOR, append(mustCBOR(t, map[string]any{"device": "d", "seq": 1}), 0x00), "extraneous"},
		{"cbor-no-seq", ContentCBOR, mustCBOR(t, map[string]any{"device": "d"}), "missing seq"},
		{"cbor-neg-seq", ContentCBOR, mustCBOR(t, map[string]any{"device": "d", "seq": -1}), "seq"},
		{"cbor-text-temp", ContentCBOR, mustCBOR(t, map[string]any{"device": "d", "seq": 1, "temp": "hot"}), "temp"},
		{"json-truncated", ContentJSON, []byte(`{"device":"d","seq":`), "json"},
		{"json-trailing", ContentJSON, []byte(`{"device":"d","seq":1} x`), "after top-level value"},
		{"json-quoted-seq", ContentJSON, []byte(`{"device":"d","seq":"1"}`), "seq"},
		{"json-null-temp", ContentJSON, []byte(`{"device":"d","seq":1,"temp":null}`), "temp"},
		{"json-device-number", ContentJSON, []byte(`{"device":5,"seq":1}`), "device"},
		{"cbor-nan", ContentCBOR, mustCBOR(t, map[string]any{"device": "d", "seq": 1, "vib": math.NaN()}), "vib"},
		{"cbor-array", ContentCBOR, mustCBOR(t, []int{1}), "not a map"},
		{"json-float-seq", ContentJSON, []byte(`{"device":"d","seq":1.5}`), "seq"},
		{"json-no-device", ContentJSON, []byte(`{"seq":1}`), "missing device"},
		{"json-array", ContentJSON, []byte(`[1]`), "json"},
		{"senml-bad-bn", ContentSenMLJSON, []byte(`[{"bn":"dev-1","n":"seq","v":1}]`), "base name"},
		{"senml-no-seq", ContentSenMLJSON, []byte(`[{"bn":"urn:dev:d:","n":"temp","v":1}]`), "missing seq"},
		{"senml-cbor-text-label", ContentSenMLCBOR, mustCBOR(t, []map[string]any{{"bn": "urn:dev:d:"}}), "label"},
		{"unknown-type", "text/plain", []byte("hello"), "unsupported content type"},
		{"no-type", "", []byte("hello"), "unknown content type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.ct, c.p)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Decode error = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), c.reason) {
				t.Fatalf("Decode error %q does not mention %q", err, c.reason)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	if got := Normalize(" Application/JSON; charset=utf-8"); got != ContentJSON {
		t.Fatalf("Normalize = %q", got)
	}
}

// FuzzDecodePayload feeds arbitrary bytes to every decoder: none may panic,
// and whatever is accepted must name a device.
func FuzzDecodePayload(f *testing.F) {
	f.Add([]byte(`{"device":"d","seq":1,"ts":5,"temp":1.5}`))
	f.Add([]byte(`[{"bn":"urn:dev:d:","bt":1.5,"n":"seq","v":1}]`))
	f.Add(mustCBOR(f, map[string]any{"device": "d", "seq": 1, "ts": 5, "hum": 2.5}))
	f.Add(mustCBOR(f, []map[int]any{{-2: "urn:dev:d:", -3: 1.0, 0: "seq", 2: 3}}))
	f.Add([]byte{0xbf, 0xff})
	f.Fuzz(func(t *testing.T, p []byte) {
		for _, ct := range []string{ContentCBOR, ContentJSON, ContentSenMLCBOR, ContentSenMLJSON, Sniff(p)} {
			r, err := Decode(ct, p)
			if err == nil && r.Device == "" {
				t.Fatalf("%s accepted a reading without a device: %q", ct, p)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("%s: error %v does not wrap ErrInvalid", ct, err)
			}
		}
	})
}
