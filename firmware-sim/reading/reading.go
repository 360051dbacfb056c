// Package reading owns the wire form of one sensor reading: the shared
// schema that firmware-sim publishes and the edge decodes (CBOR or JSON maps,
// SenML packs in CBOR or JSON), in both directions.
package reading

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/fxamacker/cbor/v2"
)

// Reading is one measurement from one device.
type Reading struct {
	Device string
	Seq    uint64 // per-device sequence number, from 0
	TsMs   int64  // device time, ms since the Unix epoch
	Temp   float64
	Hum    float64
	Vib    float64
}

// Encoding names a payload format.
type Encoding string

// The encodings of the shared schema.
const (
	CBOR      Encoding = "cbor"
	JSON      Encoding = "json"
	SenMLCBOR Encoding = "senml-cbor"
	SenMLJSON Encoding = "senml-json"
)

// Content types, as carried in the stored record's content-type header.
const (
	ContentTypeCBOR      = "application/cbor"
	ContentTypeJSON      = "application/json"
	ContentTypeSenMLCBOR = "application/senml+cbor"
	ContentTypeSenMLJSON = "application/senml+json"
)

// Encodings lists every supported encoding (for flag help and tests).
var Encodings = []Encoding{CBOR, JSON, SenMLCBOR, SenMLJSON}

// ParseEncoding accepts an encoding name; "senml" means SenML in CBOR.
func ParseEncoding(s string) (Encoding, error) {
	switch strings.ToLower(s) {
	case "cbor":
		return CBOR, nil
	case "json":
		return JSON, nil
	case "senml", "senml-cbor", "senml+cbor":
		return SenMLCBOR, nil
	case "senml-json", "senml+json":
		return SenMLJSON, nil
	}
	return "", fmt.Errorf("unknown encoding %q: want cbor, json, senml-cbor or senml-json", s)
}

// ContentType is the MIME type of an encoding.
func (e Encoding) ContentType() string {
	switch e {
	case JSON:
		return ContentTypeJSON
	case SenMLCBOR:
		return ContentTypeSenMLCBOR
	case SenMLJSON:
		return ContentTypeSenMLJSON
	default:
		return ContentTypeCBOR
	}
}

// Errors callers branch on.
var (
	// ErrNotReading means the payload decoded but is not a numbered reading
	// (no device or no seq); injected bad traffic looks like this.
	ErrNotReading = errors.New("payload is not a numbered reading")
	// ErrMalformed means the payload does not decode in its format.
	ErrMalformed = errors.New("malformed payload")
)

// mapForm is the CBOR and JSON map form. Pointers tell absent from zero.
type mapForm struct {
	Device *string  `cbor:"device,omitempty" json:"device,omitempty"`
	Seq    *uint64  `cbor:"seq,omitempty" json:"seq,omitempty"`
	Ts     *int64   `cbor:"ts,omitempty" json:"ts,omitempty"`
	Temp   *float64 `cbor:"temp,omitempty" json:"temp,omitempty"`
	Hum    *float64 `cbor:"hum,omitempty" json:"hum,omitempty"`
	Vib    *float64 `cbor:"vib,omitempty" json:"vib,omitempty"`
	// Pad only appears in deliberately oversized test payloads.
	Pad []byte `cbor:"pad,omitempty" json:"pad,omitempty"`
}

func (r Reading) mapForm() mapForm {
	return mapForm{Device: &r.Device, Seq: &r.Seq, Ts: &r.TsMs, Temp: &r.Temp, Hum: &r.Hum, Vib: &r.Vib}
}

var cborEnc = func() cbor.EncMode {
	// Deterministic output so a --seed run is byte-for-byte repeatable.
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return em
}()

var cborDec = func() cbor.DecMode {
	dm, err := cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

// Encode renders r in encoding e.
func Encode(r Reading, e Encoding) ([]byte, error) {
	var (
		b   []byte
		err error
	)
	switch e {
	case CBOR:
		b, err = cborEnc.Marshal(r.mapForm())
	case JSON:
		b, err = json.Marshal(r.mapForm())
	case SenMLCBOR:
		b, err = cborEnc.Marshal(toSenML(r))
	case SenMLJSON:
		b, err = json.Marshal(toSenML(r))
	default:
		return nil, fmt.Errorf("encode reading: unknown encoding %q", e)
	}
	if err != nil {
		return nil, fmt.Errorf("encode reading as %s: %w", e, err)
	}
	return b, nil
}

// EncodeUnnumbered renders a reading without its seq (and with pad bytes if
// any): valid in its format but never an expected reading. Bad-traffic
// injection uses it so the verifier can tell such payloads from real ones.
func EncodeUnnumbered(r Reading, e Encoding, pad []byte) ([]byte, error) {
	m := r.mapForm()
	m.Seq = nil
	m.Pad = pad
	pack := toSenML(r)
	pack = pack[:len(pack)-1] // the seq record is last
	if pad != nil {
		ps := string(bytes.Repeat([]byte{'x'}, len(pad)))
		pack = append(pack, senmlRecord{Name: "pad", String: &ps})
	}
	var (
		b   []byte
		err error
	)
	switch e {
	case JSON:
		b, err = json.Marshal(m)
	case SenMLJSON:
		b, err = json.Marshal(pack)
	case SenMLCBOR:
		b, err = cborEnc.Marshal(pack)
	default:
		b, err = cborEnc.Marshal(m)
	}
	if err != nil {
		return nil, fmt.Errorf("encode unnumbered reading: %w", err)
	}
	return b, nil
}

// Sniff guesses the encoding of a payload from its first byte, for records
// without a usable content-type header.
func Sniff(payload []byte) (Encoding, bool) {
	p := bytes.TrimLeft(payload, " \t\r\n")
	if len(p) == 0 {
		return "", false
	}
	switch c := p[0]; {
	case c == '{':
		return JSON, true
	case c == '[':
		return SenMLJSON, true
	case c>>5 == 5: // CBOR major type 5: map
		return CBOR, true
	case c>>5 == 4: // CBOR major type 4: array
		return SenMLCBOR, true
	}
	return "", false
}

// EncodingOf maps a content type to an encoding; parameters are ignored.
func EncodingOf(contentType string) (Encoding, bool) {
	ct, _, _ := strings.Cut(contentType, ";")
	switch strings.ToLower(strings.TrimSpace(ct)) {
	case ContentTypeCBOR:
		return CBOR, true
	case ContentTypeJSON:
		return JSON, true
	case ContentTypeSenMLCBOR:
		return SenMLCBOR, true
	case ContentTypeSenMLJSON:
		return SenMLJSON, true
	}
	return "", false
}

// Decode parses a payload given its content type (sniffed when empty or
// unknown). It fails with ErrMalformed for undecodable bytes and
// ErrNotReading when device or seq is missing.
func Decode(contentType string, payload []byte) (Reading, error) {
	e, ok := EncodingOf(contentType)
	if !ok {
		if e, ok = Sniff(payload); !ok {
			return Reading{}, fmt.Errorf("%w: unknown content type %q and unrecognised bytes", ErrMalformed, contentType)
		}
	}
	return DecodeAs(e, payload)
}

// DecodeAs parses a payload in a known encoding.
func DecodeAs(e Encoding, payload []byte) (Reading, error) {
	switch e {
	case CBOR, JSON:
		var m mapForm
		if err := unmarshal(e, payload, &m); err != nil {
			return Reading{}, err
		}
		return m.reading()
	case SenMLCBOR, SenMLJSON:
		var pack []senmlRecord
		if err := unmarshal(e, payload, &pack); err != nil {
			return Reading{}, err
		}
		return fromSenML(pack)
	}
	return Reading{}, fmt.Errorf("decode: unknown encoding %q", e)
}

// unmarshal decodes payload into v as CBOR or JSON, whichever e is
// carried in, wrapping a failure in ErrMalformed.
func unmarshal(e Encoding, payload []byte, v any) error {
	var err error
	if e == CBOR || e == SenMLCBOR {
		err = cborDec.Unmarshal(payload, v)
	} else {
		err = json.Unmarshal(payload, v)
	}
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMalformed, e, err)
	}
	return nil
}

func (m mapForm) reading() (Reading, error) {
	if m.Device == nil || *m.Device == "" || m.Seq == nil {
		return Reading{}, ErrNotReading
	}
	r := Reading{Device: *m.Device, Seq: *m.Seq}
	if m.Ts != nil {
		r.TsMs = *m.Ts
	}
	if m.Temp != nil {
		r.Temp = *m.Temp
	}
	if m.Hum != nil {
		r.Hum = *m.Hum
	}
	if m.Vib != nil {
		r.Vib = *m.Vib
	}
	return r, nil
}
