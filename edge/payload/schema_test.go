package payload

import (
	"errors"
	"testing"

	"github.com/tributary-io/tributary/firmware-sim/reading"
)

// TestFirmwareSimPayloads checks the shared reading schema end to end: what
// firmware-sim publishes in every encoding is what the edge accepts, with
// the same device, seq and device time; its deliberately unnumbered bad
// traffic is dead-lettered.
func TestFirmwareSimPayloads(t *testing.T) {
	t.Parallel()
	readings := []reading.Reading{
		{Device: "dev-000000", Seq: 0, TsMs: 1_700_000_000_000, Temp: 21.5, Hum: 40, Vib: 0.01},
		{Device: "dev-000042", Seq: 123456, TsMs: 1_763_900_000_123, Temp: -3.25, Hum: 99.9, Vib: 0},
	}
	for _, e := range reading.Encodings {
		for _, r := range readings {
			p, err := reading.Encode(r, e)
			if err != nil {
				t.Fatal(err)
			}
			if got := Sniff(p); got != e.ContentType() {
				t.Errorf("%s: sniffed %q, want %q", e, got, e.ContentType())
			}
			got, err := Decode(e.ContentType(), p)
			if err != nil {
				t.Fatalf("%s %+v: %v", e, r, err)
			}
			if got.Device != r.Device || got.Seq != r.Seq || !got.HasTime || got.TimeMs != r.TsMs {
				t.Errorf("%s: decoded %+v from %+v", e, got, r)
			}
			bad, err := reading.EncodeUnnumbered(r, e, []byte("xx"))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Decode(e.ContentType(), bad); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: unnumbered reading accepted (%v)", e, err)
			}
		}
	}
}
