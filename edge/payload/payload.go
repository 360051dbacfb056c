// Package payload decodes and validates sensor readings as they arrive over
// MQTT: the CBOR and JSON reading maps and SenML packs (RFC 8428) in both
// encodings. The edge stores payload bytes exactly as received; decoding only
// decides whether a payload is valid and extracts the device, sequence number
// and device time for the record's key and timestamp.
package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/fxamacker/cbor/v2"

	"github.com/tributary-io/tributary/internal/render"
)

// Content types the decoder understands: the values the edge stamps in
// the content-type header, defined once in render, which reads them back.
const (
	ContentCBOR      = render.ContentCBOR
	ContentJSON      = render.ContentJSON
	ContentSenMLCBOR = render.ContentSenMLCBOR
	ContentSenMLJSON = render.ContentSenMLJSON
)

// ErrInvalid wraps every reason a payload is rejected; the text after the
// prefix is what goes into the dead letter's reason header.
var ErrInvalid = errors.New("invalid payload")

// Reading is what the edge needs from a decoded payload.
type Reading struct {
	Device string
	Seq    uint64
	// TimeMs is the device time in ms since the Unix epoch; HasTime says
	// whether the payload carried one.
	TimeMs  int64
	HasTime bool
}

// Measurement names a reading may carry; all are optional, numbers when present.
var measurements = []string{"temp", "hum", "vib"}

// decMode bounds what a hostile CBOR payload can make us allocate: a reading
// is a flat map and a SenML pack a short array of small maps, so the limits sit
// at the library's minimums. Indefinite lengths are refused (they let a sender
// stream unbounded items) and duplicate keys are an error, not last-wins, so
// two decoders can never disagree about a reading.
var decMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		MaxNestedLevels:  4,
		MaxArrayElements: 256,
		MaxMapPairs:      32,
		IndefLength:      cbor.IndefLengthForbidden,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF,
		TagsMd:           cbor.TagsForbidden,
		IntDec:           cbor.IntDecConvertNone,
		UTF8:             cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(fmt.Sprintf("payload: cbor decode options: %v", err))
	}
	return dm
}()

// Sniff guesses the content type of a payload without one: JSON starts with
// '{' (reading) or '[' (SenML pack); in CBOR a map (major type 5) is a reading
// and an array (major type 4) a SenML pack.
func Sniff(p []byte) string {
	t := bytes.TrimLeft(p, " \t\r\n")
	if len(t) > 0 {
		switch t[0] {
		case '{':
			return ContentJSON
		case '[':
			return ContentSenMLJSON
		}
	}
	if len(p) > 0 {
		switch p[0] >> 5 {
		case 5:
			return ContentCBOR
		case 4:
			return ContentSenMLCBOR
		}
	}
	return ""
}

// Normalize lower-cases a content type and strips parameters ("; charset=").
func Normalize(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(strings.TrimSpace(ct))
}

// Decode validates p as contentType (already normalized) and returns its reading.
func Decode(contentType string, p []byte) (Reading, error) {
	switch contentType {
	case ContentCBOR:
		return decodeCBORReading(p)
	case ContentJSON:
		return decodeJSONReading(p)
	case ContentSenMLCBOR:
		return decodeSenMLCBOR(p)
	case ContentSenMLJSON:
		return decodeSenMLJSON(p)
	case "":
		return Reading{}, fmt.Errorf("%w: unknown content type", ErrInvalid)
	default:
		return Reading{}, fmt.Errorf("%w: unsupported content type %q", ErrInvalid, contentType)
	}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// cborReading is the reading map's known keys; others are ignored. Typed
// fields make the decoder do the type checks without building a generic map.
type cborReading struct {
	Device *string  `cbor:"device"`
	Seq    *uint64  `cbor:"seq"`
	Ts     *int64   `cbor:"ts"`
	Temp   *float64 `cbor:"temp"`
	Hum    *float64 `cbor:"hum"`
	Vib    *float64 `cbor:"vib"`
}

func decodeCBORReading(p []byte) (Reading, error) {
	if r, ok := fastCBORReading(p); ok {
		return r, nil
	}
	return libraryCBORReading(p)
}

// libraryCBORReading decodes a reading with the cbor library (the reference
// for fastCBORReading, and the path for every payload it declines).
func libraryCBORReading(p []byte) (Reading, error) {
	if len(p) == 0 || p[0]>>5 != 5 {
		return Reading{}, invalid("cbor: not a map")
	}
	var m cborReading
	if err := decMode.Unmarshal(p, &m); err != nil {
		return Reading{}, invalid("cbor: %v", err)
	}
	var r Reading
	if m.Device == nil {
		return r, invalid("missing device")
	}
	if r.Device = *m.Device; r.Device == "" {
		return r, invalid("device is empty")
	}
	if m.Seq == nil {
		return r, invalid("missing seq")
	}
	r.Seq = *m.Seq
	if m.Ts != nil {
		r.TimeMs, r.HasTime = *m.Ts, true
	}
	for i, v := range []*float64{m.Temp, m.Hum, m.Vib} {
		if v != nil && (math.IsNaN(*v) || math.IsInf(*v, 0)) {
			return r, invalid("%s: not a finite number", measurements[i])
		}
	}
	return r, nil
}

// jsonReading is the reading object's known keys, kept raw so that each is
// checked strictly (seq digits only, device a string) without building a map.
// encoding/json matches keys case-insensitively and lets the last duplicate
// win; both are harmless here since the stored value is the payload as sent.
type jsonReading struct {
	Device json.RawMessage `json:"device"`
	Seq    json.RawMessage `json:"seq"`
	Ts     json.RawMessage `json:"ts"`
	Temp   json.RawMessage `json:"temp"`
	Hum    json.RawMessage `json:"hum"`
	Vib    json.RawMessage `json:"vib"`
}

func decodeJSONReading(p []byte) (Reading, error) {
	t := bytes.TrimLeft(p, " \t\r\n")
	if len(t) == 0 || t[0] != '{' {
		return Reading{}, invalid("json: not an object")
	}
	var m jsonReading
	if err := json.Unmarshal(p, &m); err != nil {
		return Reading{}, invalid("json: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	var r Reading
	if m.Device == nil {
		return r, invalid("missing device")
	}
	if m.Device[0] != '"' || json.Unmarshal(m.Device, &r.Device) != nil || r.Device == "" {
		return r, invalid("device is not a non-empty text string")
	}
	if m.Seq == nil {
		return r, invalid("missing seq")
	}
	s, err := strconv.ParseUint(string(m.Seq), 10, 64)
	if err != nil {
		return r, invalid("seq %s is not an unsigned integer", m.Seq)
	}
	r.Seq = s
	if m.Ts != nil {
		ts, err := strconv.ParseInt(string(m.Ts), 10, 64)
		if err != nil {
			return r, invalid("ts %s is not an integer", m.Ts)
		}
		r.TimeMs, r.HasTime = ts, true
	}
	for i, v := range []json.RawMessage{m.Temp, m.Hum, m.Vib} {
		if v == nil {
			continue
		}
		// v is a valid JSON value, so unquoted NaN, Inf or hex cannot occur.
		if _, err := strconv.ParseFloat(string(v), 64); err != nil {
			return r, invalid("%s: %s is not a number", measurements[i], v)
		}
	}
	return r, nil
}

// strictJSON decodes exactly one JSON value with numbers kept exact and
// refuses trailing bytes, which encoding/json's Unmarshal would also refuse
// but with less helpful errors.
func strictJSON(label string, p []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(p))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return invalid("%s: %s", label, strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalid("%s: trailing data after value", label)
	}
	return nil
}

func asFloat(v any) (float64, error) {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case float32:
		f = float64(x)
	case uint64:
		f = float64(x)
	case int64:
		f = float64(x)
	case json.Number:
		g, err := x.Float64()
		if err != nil {
			return 0, fmt.Errorf("not a number: %v", err)
		}
		f = g
	default:
		return 0, fmt.Errorf("not a number (%T)", v)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errors.New("not a finite number")
	}
	return f, nil
}
