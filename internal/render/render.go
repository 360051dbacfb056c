// Package render turns a record's value into something a person can read:
// CBOR, SenML (JSON or CBOR) and Sparkplug B become JSON values, SenML packs
// are resolved (base name, time, unit and value applied to each record,
// RFC 8428), and
// anything else is kept as text or, when it is not text, as base64. The
// admin CLI's consume and the edge's tail API share it, so both show a
// reading the same way.
package render

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// Content types as the edge stamps them in the content-type header.
const (
	ContentCBOR      = "application/cbor"
	ContentJSON      = "application/json"
	ContentSenMLCBOR = "application/senml+cbor"
	ContentSenMLJSON = "application/senml+json"
)

// Value is a rendered record value: Format says how Data was read ("cbor",
// "json", "senml", "sparkplug", "text", "base64" or "empty"); Data
// marshals to JSON.
type Value struct {
	Format string `json:"format"`
	Data   any    `json:"data"`
}

// Decode renders value using contentType when it names one of the edge's
// formats, and by sniffing otherwise (JSON first, then a single well-formed
// CBOR item, then UTF-8 text). It never fails: undecodable bytes come back
// as base64.
func Decode(contentType string, value []byte) Value {
	if len(value) == 0 {
		return Value{Format: "empty"}
	}
	switch strings.ToLower(strings.TrimSpace(strings.SplitN(contentType, ";", 2)[0])) {
	case ContentSenMLJSON:
		var v any
		if json.Unmarshal(value, &v) == nil {
			if pack, ok := resolveSenML(v); ok {
				return Value{Format: "senml", Data: pack}
			}
			return Value{Format: "json", Data: v}
		}
	case ContentSenMLCBOR:
		if v, ok := decodeCBOR(value); ok {
			if pack, ok := resolveSenML(v); ok {
				return Value{Format: "senml", Data: pack}
			}
			return Value{Format: "cbor", Data: v}
		}
	case ContentCBOR:
		if v, ok := decodeCBOR(value); ok {
			return Value{Format: "cbor", Data: v}
		}
	case ContentJSON:
		var v any
		if json.Unmarshal(value, &v) == nil {
			return Value{Format: "json", Data: v}
		}
	case ContentSparkplug:
		if v, err := decodeSparkplug(value); err == nil {
			return Value{Format: "sparkplug", Data: v}
		}
	}
	return sniff(value)
}

func sniff(value []byte) Value {
	var v any
	if json.Unmarshal(value, &v) == nil {
		return Value{Format: "json", Data: v}
	}
	if utf8.Valid(value) && printable(value) {
		return Value{Format: "text", Data: string(value)}
	}
	if v, ok := decodeCBOR(value); ok {
		return Value{Format: "cbor", Data: v}
	}
	return Value{Format: "base64", Data: base64.StdEncoding.EncodeToString(value)}
}

func printable(b []byte) bool {
	for _, r := range string(b) {
		if r < 0x20 && r != '\n' && r != '\r' && r != '\t' {
			return false
		}
	}
	return true
}

// decMode decodes CBOR maps with any key type; jsonable makes them
// string-keyed afterwards. Limits keep a hostile payload small.
var decMode, _ = cbor.DecOptions{
	MaxNestedLevels:  32,
	MaxArrayElements: 1 << 16,
	MaxMapPairs:      1 << 16,
}.DecMode()

func decodeCBOR(b []byte) (any, bool) {
	var v any
	rest, err := decMode.UnmarshalFirst(b, &v)
	if err != nil || len(rest) != 0 {
		return nil, false
	}
	return jsonable(v), true
}

// jsonable converts what the CBOR decoder returns into values encoding/json
// accepts: map keys become strings, byte strings base64 text, tags their
// content (times their RFC 3339 text), and non-finite floats strings.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[keyString(k)] = jsonable(e)
		}
		return m
	case []any:
		for i := range x {
			x[i] = jsonable(x[i])
		}
		return x
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	case cbor.Tag:
		return map[string]any{"tag": x.Number, "value": jsonable(x.Content)}
	case cbor.RawTag:
		return map[string]any{"tag": x.Number, "value": base64.StdEncoding.EncodeToString(x.Content)}
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Sprint(x)
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Sprint(x)
		}
	case cbor.SimpleValue:
		return uint8(x)
	case time.Time:
		// A time tag (0 or 1): the RFC 3339 text encoding/json would write,
		// written here for any year (encoding/json refuses years past 9999).
		return x.Format(time.RFC3339Nano)
	}
	return v
}

func keyString(k any) string {
	switch x := k.(type) {
	case string:
		return x
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	default:
		return fmt.Sprint(x)
	}
}

// senmlLabels maps SenML's CBOR integer labels (RFC 8428 table 6) to the
// JSON names.
var senmlLabels = map[string]string{
	"-1": "bver", "-2": "bn", "-3": "bt", "-4": "bu", "-5": "bv", "-6": "bs",
	"0": "n", "1": "u", "2": "v", "3": "vs", "4": "vb", "5": "s", "6": "t", "7": "ut", "8": "vd",
}

// resolveSenML turns a SenML pack (an array of maps) into resolved records:
// each with its full name, unit, value and absolute time (seconds, as in
// SenML). It reports false for anything that is not a pack.
func resolveSenML(v any) ([]map[string]any, bool) {
	arr, ok := v.([]any)
	if !ok || len(arr) == 0 {
		return nil, false
	}
	var (
		bn, bu     string
		bt, bv, bs float64
		out        = make([]map[string]any, 0, len(arr))
	)
	for _, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			return nil, false
		}
		rec := map[string]any{}
		for k, x := range m {
			if name, ok := senmlLabels[k]; ok {
				k = name
			}
			rec[k] = x
		}
		if s, ok := rec["bn"].(string); ok {
			bn = s
		}
		if s, ok := rec["bu"].(string); ok {
			bu = s
		}
		if f, ok := number(rec["bt"]); ok {
			bt = f
		}
		if f, ok := number(rec["bv"]); ok {
			bv = f
		}
		if f, ok := number(rec["bs"]); ok {
			bs = f
		}
		for _, k := range []string{"bn", "bu", "bt", "bv", "bs", "bver"} {
			delete(rec, k)
		}
		name, _ := rec["n"].(string)
		rec["n"] = bn + name
		if _, ok := rec["u"]; !ok && bu != "" {
			rec["u"] = bu
		}
		if f, ok := number(rec["v"]); ok {
			rec["v"] = f + bv
		} else if _, other := firstOf(rec, "vs", "vb", "vd", "s"); !other && bv != 0 {
			rec["v"] = bv
		}
		if f, ok := number(rec["s"]); ok {
			rec["s"] = f + bs
		}
		t, _ := number(rec["t"])
		if t+bt != 0 {
			rec["t"] = t + bt
		}
		out = append(out, rec)
	}
	return out, true
}

func firstOf(m map[string]any, keys ...string) (any, bool) {
	for _, k := range keys {
		if v, ok := m[k]; ok {
			return v, true
		}
	}
	return nil, false
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case int:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// JSONToCBOR encodes a JSON document as CBOR (for producing test readings
// the way a CBOR device would send them).
func JSONToCBOR(doc []byte) ([]byte, error) {
	var v any
	d := json.NewDecoder(bytes.NewReader(doc))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	return cbor.Marshal(cborable(v))
}

// cborable keeps integers integers: JSON numbers without a fraction become
// CBOR integers, the rest floats.
func cborable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = cborable(e)
		}
	case []any:
		for i := range x {
			x[i] = cborable(x[i])
		}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	}
	return v
}
