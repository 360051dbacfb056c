package recordbatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// fuzzSeeds are valid batches of every codec plus a few broken ones, so
// the fuzzer starts from inputs that get past the header.
func fuzzSeeds(f *testing.F) {
	for _, codec := range allCodecs {
		opts := NoProducer
		opts.Compression = codec
		b := mustBuild(f, sampleRecords()[:3], opts)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add(make([]byte, HeaderSize))
	two, _ := Build([]Record{{Value: []byte("a")}}, NoProducer)
	f.Add(append(bytes.Clone(two), two...))
}

// FuzzRecords feeds arbitrary bytes to Validate and Records. Random bytes
// rarely carry a right CRC, so each input is tried twice: as is, and with
// its length and CRC fixed up so the record and codec decoders see it.
// Neither may panic, and a success must be consistent with the header.
func FuzzRecords(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		checkRecords(t, b)
		if len(b) >= HeaderSize {
			c := bytes.Clone(b)
			binary.BigEndian.PutUint32(c[offLength:], uint32(len(c)-LogOverhead))
			SetCRC(c)
			checkRecords(t, c)
		}
	})
}

func checkRecords(t *testing.T, b []byte) {
	recs, err := Records(b)
	if err != nil {
		if !errors.Is(err, ErrShort) && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Records error is neither ErrShort nor ErrCorrupt: %v", err)
		}
		return
	}
	h, err := Validate(b)
	if err != nil {
		t.Fatalf("Records accepted what Validate refuses: %v", err)
	}
	if len(recs) != int(h.NumRecords) {
		t.Fatalf("%d records, header says %d", len(recs), h.NumRecords)
	}
	// Whatever decodes must survive a rebuild with its offsets.
	if len(recs) == 0 || h.IsControl() {
		return
	}
	opts := BuildOptions{Compression: CompressionNone, BaseOffset: h.BaseOffset, KeepOffsets: true,
		ProducerID: h.ProducerID, ProducerEpoch: h.ProducerEpoch, BaseSequence: h.BaseSequence}
	rb, err := Build(recs, opts)
	if err != nil {
		return // offsets out of order or range: Build rightly refuses
	}
	again, err := Records(rb)
	if err != nil {
		t.Fatalf("rebuilt batch does not decode: %v", err)
	}
	if h.Attributes&TimestampTypeBit != 0 {
		return // timestamps were replaced by MaxTimestamp
	}
	for i := range recs {
		if again[i].Offset != recs[i].Offset || again[i].Timestamp != recs[i].Timestamp ||
			!sameBytes(again[i].Key, recs[i].Key) || !sameBytes(again[i].Value, recs[i].Value) ||
			len(again[i].Headers) != len(recs[i].Headers) {
			t.Fatalf("record %d changed in rebuild: %+v vs %+v", i, again[i], recs[i])
		}
	}
}

// FuzzValidate checks the header parser: no panics, sizes within the
// buffer on success, and ErrShort only when more bytes could help.
func FuzzValidate(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := Validate(b)
		if err != nil {
			if !errors.Is(err, ErrShort) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Validate error is neither ErrShort nor ErrCorrupt: %v", err)
			}
			if errors.Is(err, ErrShort) && len(b) >= HeaderSize && h.Length >= HeaderSize-LogOverhead && len(b) >= h.Size() {
				t.Fatalf("ErrShort for %d bytes holding a %d-byte batch", len(b), h.Size())
			}
			return
		}
		if h.Size() < HeaderSize || h.Size() > len(b) {
			t.Fatalf("valid batch of size %d in %d bytes", h.Size(), len(b))
		}
		// Split agrees with Validate about the first batch.
		var first Header
		_ = Split(b[:h.Size()], func(hh Header, batch []byte) error {
			first = hh
			if len(batch) != hh.Size() {
				t.Fatalf("Split gave %d bytes for a %d-byte batch", len(batch), hh.Size())
			}
			return nil
		})
		if first != h {
			t.Fatalf("Split header %+v, Validate %+v", first, h)
		}
	})
}
