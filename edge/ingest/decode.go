package ingest

import (
	"bytes"
	"fmt"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tributary-io/tributary/edge/payload"
	"github.com/tributary-io/tributary/edge/rules"
)

// decoded is what a rule's format made of a payload.
type decoded struct {
	ct       string // stored content type
	reading  bool   // today's reading shape: its device must match the topic
	device   string // device the payload names ("" if none)
	seq      uint64
	hasSeq   bool
	timeMs   int64
	hasTime  bool
	textKind string // for text: number, bool or text

	jsonDoc  []byte // set for JSON payloads (field lookups, schema)
	cborDoc  any    // set for CBOR payloads once decoded
	cborRaw  []byte
	isCBOR   bool
	deadKind string // why it failed, for the metric
}

// Dead-letter kinds (label values of tributary_edge_dead_letters_total).
const (
	DeadInvalid        = "invalid"
	DeadSchema         = "schema"
	DeadDeviceMismatch = "device_mismatch"
	DeadUnmapped       = "unmapped"
	DeadTime           = "bad_time"
	DeadSeq            = "bad_seq"
	DeadEmpty          = "empty"
	DeadSparkplug      = "sparkplug"
)

var errEmpty = fmt.Errorf("%w: empty payload", payload.ErrInvalid)

// sniff is Sniff's first guess, "" when the bytes look like neither JSON
// nor a CBOR map or array.
func sniff(p []byte) string { return payload.Sniff(p) }

// decodePayload reads p with the rule's format. declared is the content
// type the publisher or stream config gave ("" if none).
func (h *Hook) decodePayload(d *decoded, r *rules.Rule, declared string, p []byte) error {
	switch r.Format {
	case payload.FormatReading:
		ct := declared
		if ct == "" {
			ct = sniff(p)
		}
		return readingDecoded(d, ct, p)
	case payload.FormatJSON:
		return h.genericJSON(d, r, p)
	case payload.FormatCBOR:
		return h.genericCBOR(d, r, p)
	case payload.FormatSenMLJSON:
		return senmlDecoded(d, payload.ContentSenMLJSON, p)
	case payload.FormatSenMLCBOR:
		return senmlDecoded(d, payload.ContentSenMLCBOR, p)
	case payload.FormatText:
		if err := payload.CheckText(p); err != nil {
			*d = decoded{deadKind: DeadInvalid}
			return err
		}
		*d = decoded{ct: payload.ContentText, textKind: payload.TextKind(p)}
		return nil
	case payload.FormatRaw:
		ct := declared
		if ct == "" {
			ct = payload.ContentRaw
		}
		*d = decoded{ct: ct}
		return nil
	}
	return h.auto(d, r, declared, p)
}

// auto sniffs as the edge always did, a reading first, but falls back to
// generic JSON, CBOR and text instead of dead-lettering well-formed data.
func (h *Hook) auto(d *decoded, r *rules.Rule, declared string, p []byte) error {
	if len(p) == 0 {
		*d = decoded{deadKind: DeadEmpty}
		return errEmpty
	}
	ct := declared
	if ct == "" {
		ct = sniff(p)
	}
	switch ct {
	case payload.ContentJSON, payload.ContentCBOR:
		if !r.HasSeq && !r.HasTimeField {
			if readingDecoded(d, ct, p) == nil {
				return nil
			}
			*d = decoded{}
		}
		if ct == payload.ContentJSON {
			return h.genericJSON(d, r, p)
		}
		return h.genericCBOR(d, r, p)
	case payload.ContentSenMLJSON, payload.ContentSenMLCBOR:
		err := senmlDecoded(d, ct, p)
		if err == nil || declared != "" {
			return err // a pack declared SenML must be SenML
		}
		*d = decoded{}
		if ct == payload.ContentSenMLJSON {
			return h.genericJSON(d, r, p)
		}
		return h.genericCBOR(d, r, p)
	case "":
		if looksLikeText(p) {
			*d = decoded{ct: payload.ContentText, textKind: payload.TextKind(p)}
			return nil
		}
		if payload.CheckCBOR(p, &r.Limits) == nil {
			return h.genericCBOR(d, r, p)
		}
		*d = decoded{deadKind: DeadInvalid}
		return fmt.Errorf("%w: not JSON, CBOR, SenML or UTF-8 text (format raw stores binary frames)", payload.ErrInvalid)
	case payload.ContentText:
		if err := payload.CheckText(p); err != nil {
			*d = decoded{deadKind: DeadInvalid}
			return err
		}
		*d = decoded{ct: ct, textKind: payload.TextKind(p)}
		return nil
	}
	*d = decoded{ct: ct}
	return nil // a declared type the edge does not read: stored as is
}

func looksLikeText(p []byte) bool {
	for _, c := range p {
		if c < 0x20 && c != '\t' && c != '\r' && c != '\n' || c == 0x7f {
			return false
		}
	}
	return payload.CheckText(p) == nil
}

func readingDecoded(d *decoded, ct string, p []byte) error {
	rd, err := payload.Decode(ct, p)
	if err != nil {
		*d = decoded{deadKind: DeadInvalid}
		return err
	}
	*d = decoded{ct: ct, reading: true, device: rd.Device, seq: rd.Seq, hasSeq: true, timeMs: rd.TimeMs, hasTime: rd.HasTime}
	switch ct {
	case payload.ContentJSON:
		d.jsonDoc = p
	case payload.ContentCBOR:
		d.isCBOR, d.cborRaw = true, p
	}
	return nil
}

func senmlDecoded(d *decoded, ct string, p []byte) error {
	rd, hasSeq, err := payload.DecodeSenML(ct, p)
	if err != nil {
		*d = decoded{deadKind: DeadInvalid}
		return err
	}
	// A SenML pack with its own seq and device is a reading (deduplicated,
	// device checked against the topic); any other pack is stored as sent.
	*d = decoded{ct: ct, reading: hasSeq && rd.Device != "", device: rd.Device, seq: rd.Seq, hasSeq: hasSeq && rd.Device != "",
		timeMs: rd.TimeMs, hasTime: rd.HasTime}
	return nil
}

// genericJSON checks p and picks the rule's time and seq fields out of it
// in the same pass over the bytes.
func (h *Hook) genericJSON(d *decoded, r *rules.Rule, p []byte) error {
	var f payload.JSONFields
	if r.HasTimeField {
		f.Want(0, r.Time.Path)
	}
	if r.HasSeq {
		f.Want(1, r.Seq)
	}
	if err := payload.CheckJSONFields(p, &r.Limits, &f); err != nil {
		*d = decoded{deadKind: DeadInvalid}
		return err
	}
	*d = decoded{ct: payload.ContentJSON, jsonDoc: p}
	ts, tsOK := f.Field(0)
	seq, seqOK := f.Field(1)
	return d.setFields(r, ts, tsOK, seq, seqOK)
}

func (h *Hook) genericCBOR(d *decoded, r *rules.Rule, p []byte) error {
	v, err := payload.CBORValue(p, &r.Limits)
	if err != nil {
		*d = decoded{deadKind: DeadInvalid}
		return err
	}
	*d = decoded{ct: payload.ContentCBOR, isCBOR: true, cborRaw: p, cborDoc: v}
	return h.fields(r, d)
}

// field looks a path up in a JSON or CBOR payload.
func (d *decoded) field(r *rules.Rule, path payload.Path) (payload.Scalar, bool, error) {
	if d.jsonDoc != nil {
		s, ok := payload.JSONField(d.jsonDoc, path)
		return s, ok, nil
	}
	if d.isCBOR {
		if d.cborDoc == nil {
			v, err := payload.CBORValue(d.cborRaw, &r.Limits)
			if err != nil {
				return payload.Scalar{}, false, err
			}
			d.cborDoc = v
		}
		s, ok := payload.CBORField(d.cborDoc, path)
		return s, ok, nil
	}
	return payload.Scalar{}, false, nil
}

// fields extracts the rule's seq and time fields. A missing time field
// falls back to the receive time; a present but unreadable one is a dead
// letter (the rule says the payload carries it).
func (h *Hook) fields(r *rules.Rule, d *decoded) error {
	var ts, seq payload.Scalar
	var tsOK, seqOK bool
	if r.HasTimeField {
		var err error
		if ts, tsOK, err = d.field(r, r.Time.Path); err != nil {
			d.deadKind = DeadInvalid
			return err
		}
	}
	if r.HasSeq {
		var err error
		if seq, seqOK, err = d.field(r, r.Seq); err != nil {
			d.deadKind = DeadInvalid
			return err
		}
	}
	return d.setFields(r, ts, tsOK, seq, seqOK)
}

// setFields reads the time and seq fields found (tsOK, seqOK) into d.
func (d *decoded) setFields(r *rules.Rule, ts payload.Scalar, tsOK bool, seq payload.Scalar, seqOK bool) error {
	if tsOK {
		ms, err := r.Time.TimeMs(ts)
		if err != nil {
			d.deadKind = DeadTime
			return fmt.Errorf("%w: time field: %v", payload.ErrInvalid, err)
		}
		d.timeMs, d.hasTime = ms, true
	}
	if seqOK {
		if !seq.IsInt || seq.Int < 0 {
			d.deadKind = DeadSeq
			return fmt.Errorf("%w: seq field is not an unsigned integer", payload.ErrInvalid)
		}
		d.seq, d.hasSeq = uint64(seq.Int), true
	}
	return nil
}

// validate applies the rule's JSON Schema to a JSON or CBOR payload.
func (d *decoded) validate(r *rules.Rule) error {
	var doc any
	switch {
	case d.jsonDoc != nil:
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(d.jsonDoc))
		if err != nil {
			return fmt.Errorf("%w: json: %v", payload.ErrInvalid, err)
		}
		doc = v
	case d.isCBOR:
		if d.cborDoc == nil {
			v, err := payload.CBORValue(d.cborRaw, &r.Limits)
			if err != nil {
				return err
			}
			d.cborDoc = v
		}
		v, err := payload.JSONCompatible(d.cborDoc)
		if err != nil {
			return fmt.Errorf("%w: schema: %v", payload.ErrInvalid, err)
		}
		doc = v
	default:
		return nil
	}
	if err := r.Schema.Validate(doc); err != nil {
		return fmt.Errorf("%w: %v", payload.ErrInvalid, err)
	}
	return nil
}

// window applies the rule's device-time window: a time older than MaxAge
// or further ahead than MaxFuture is replaced by the receive time (or
// clamped to the bound); the caller keeps the original in a header.
func window(r *rules.Rule, ts int64, now time.Time) (int64, bool) {
	n := now.UnixMilli()
	if r.MaxAge > 0 && ts < n-r.MaxAge.Milliseconds() {
		if r.Clamp {
			return n - r.MaxAge.Milliseconds(), true
		}
		return n, true
	}
	if r.MaxFuture > 0 && ts > n+r.MaxFuture.Milliseconds() {
		if r.Clamp {
			return n + r.MaxFuture.Milliseconds(), true
		}
		return n, true
	}
	return ts, false
}
