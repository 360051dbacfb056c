package render

import (
	"encoding/json"
	"testing"
)

// FuzzDecode: any bytes under any of the edge's content types render to
// something encoding/json accepts, without panicking.
func FuzzDecode(f *testing.F) {
	f.Add(uint8(0), []byte(`{"a":1}`))
	f.Add(uint8(1), []byte{0xa1, 0x61, 0x61, 0x01})
	f.Add(uint8(2), []byte(`[{"bn":"x","v":1}]`))
	f.Add(uint8(3), []byte{0x81, 0xa2, 0x00, 0x61, 0x74, 0x02, 0x01})
	f.Add(uint8(4), []byte{0x08, 0x01, 0x12, 0x02, 0x0a, 0x00})
	types := []string{ContentJSON, ContentCBOR, ContentSenMLJSON, ContentSenMLCBOR, ContentSparkplug, ""}
	f.Fuzz(func(t *testing.T, ct uint8, b []byte) {
		v := Decode(types[int(ct)%len(types)], b)
		if _, err := json.Marshal(v); err != nil {
			t.Fatalf("%s value does not marshal: %v", v.Format, err)
		}
	})
}
