package reading

import (
	"testing"

	"github.com/tributary-io/tributary/edge/payload"
)

// TestEdgeDecodesWhatDevicesSend pins the shared schema from both sides:
// every encoding the simulator produces is accepted by the edge's decoder
// with the same device, seq and device time, both by content type and by
// sniffing (MQTT 3.1.1 publishes carry no content type).
func TestEdgeDecodesWhatDevicesSend(t *testing.T) {
	t.Parallel()
	for _, e := range Encodings {
		b, err := Encode(sample, e)
		if err != nil {
			t.Fatal(err)
		}
		if ct := payload.Sniff(b); ct != e.ContentType() {
			t.Errorf("%s: edge sniffs %q, want %q", e, ct, e.ContentType())
		}
		r, err := payload.Decode(e.ContentType(), b)
		if err != nil {
			t.Fatalf("%s: edge refuses the payload: %v", e, err)
		}
		if r.Device != sample.Device || r.Seq != sample.Seq || !r.HasTime || r.TimeMs != sample.TsMs {
			t.Errorf("%s: edge decoded %+v, want device %s seq %d ts %d", e, r, sample.Device, sample.Seq, sample.TsMs)
		}
		// Bad traffic must not pass as a reading at the edge either.
		bad, err := EncodeUnnumbered(sample, e, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := payload.Decode(e.ContentType(), bad); err == nil {
			t.Errorf("%s: edge accepts a payload without seq", e)
		}
	}
}
