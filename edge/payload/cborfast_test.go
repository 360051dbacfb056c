package payload

import (
	"math"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// cborFastCases are payloads the fast path must decline (the library path
// decides them) or accept; FuzzCBORFastPath seeds from them too.
func cborFastCases(t testing.TB) (accept, decline [][]byte) {
	enc := func(v any) []byte {
		b, err := cbor.CoreDetEncOptions().EncMode()
		if err != nil {
			t.Fatal(err)
		}
		p, err := b.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	accept = [][]byte{
		enc(map[string]any{"device": "d1", "seq": uint64(7), "ts": int64(1700000000000), "temp": 21.5, "hum": 40.25, "vib": 0.01, "fw": "1.2.3"}),
		enc(map[string]any{"device": "d1", "seq": uint64(0)}),                                 // no time
		enc(map[string]any{"device": "d1", "seq": uint64(1), "ts": int64(-5)}),                // negative time
		enc(map[string]any{"device": "d1", "seq": uint64(1), "extra": []byte{1}, "ok": true}), // ignored scalars
		enc(map[string]any{"device": "d1", "seq": uint64(1), "note": nil}),
	}
	decline = [][]byte{
		enc(map[string]any{"device": "d1", "seq": uint64(1), "temp": math.NaN()}),
		enc(map[string]any{"device": "d1", "seq": uint64(1), "vib": math.Inf(1)}),
		enc(map[string]any{"Device": "d1", "seq": uint64(1)}),                   // case-insensitive match
		enc(map[string]any{"device": "d1", "seq": int64(-1)}),                   // negative seq
		enc(map[string]any{"device": "d1", "seq": uint64(1), "temp": int64(3)}), // integer measurement
		enc(map[string]any{"device": "", "seq": uint64(1)}),
		enc(map[string]any{"device": "d1"}),
		enc(map[string]any{"device": "d1", "seq": uint64(1), "tags": []string{"a"}}), // nested
		enc(map[string]any{"device": nil, "seq": uint64(1)}),
		enc(map[any]any{1: "x", "device": "d1", "seq": uint64(1)}),                                                     // integer key
		append(enc(map[string]any{"device": "d1", "seq": uint64(1)}), 0),                                               // trailing byte
		{0xa2, 0x66, 'd', 'e', 'v', 'i', 'c', 'e', 0x62, 'd', '1', 0x66, 'd', 'e', 'v', 'i', 'c', 'e', 0x62, 'd', '2'}, // duplicate key
		{0xbf, 0xff}, // indefinite map
	}
	return accept, decline
}

// TestCBORFastPath: the fast path takes the common readings (so it is not
// dead code) and agrees with the library; it declines the unusual ones.
func TestCBORFastPath(t *testing.T) {
	t.Parallel()
	accept, decline := cborFastCases(t)
	for _, p := range accept {
		got, ok := fastCBORReading(p)
		if !ok {
			t.Fatalf("fast path declined % x", p)
		}
		want, err := libraryCBORReading(p)
		if err != nil || got != want {
			t.Fatalf("% x: fast %+v, library %+v (%v)", p, got, want, err)
		}
	}
	for _, p := range decline {
		if r, ok := fastCBORReading(p); ok {
			t.Fatalf("fast path accepted % x as %+v", p, r)
		}
	}
}

// FuzzCBORFastPath: whatever the fast path accepts, the library accepts
// with the same reading.
func FuzzCBORFastPath(f *testing.F) {
	accept, decline := cborFastCases(f)
	for _, p := range append(accept, decline...) {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		got, ok := fastCBORReading(p)
		if !ok {
			return
		}
		want, err := libraryCBORReading(p)
		if err != nil {
			t.Fatalf("fast path accepted % x (%+v), library refuses: %v", p, got, err)
		}
		if got != want {
			t.Fatalf("% x: fast %+v, library %+v", p, got, want)
		}
	})
}

func BenchmarkCBORReading(b *testing.B) {
	accept, _ := cborFastCases(b)
	p := accept[0]
	b.Run("fast", func(b *testing.B) {
		for b.Loop() {
			if _, err := decodeCBORReading(p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("library", func(b *testing.B) {
		for b.Loop() {
			if _, err := libraryCBORReading(p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
