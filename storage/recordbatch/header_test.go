package recordbatch

import (
	"bytes"
	"errors"
	"testing"
)

func TestSplitWalksConcatenatedBatches(t *testing.T) {
	t.Parallel()
	var buf []byte
	var next int64
	for i, codec := range allCodecs {
		opts := NoProducer
		opts.Compression = codec
		b := mustBuild(t, sampleRecords()[:i+1], opts)
		SetBaseOffset(b, next)
		SetLeaderEpoch(b, int32(i))
		next += int64(i + 1)
		buf = append(buf, b...)
	}
	var offsets []int64
	err := Split(buf, func(h Header, batch []byte) error {
		recs, err := Records(batch)
		if err != nil {
			return err
		}
		for _, r := range recs {
			offsets = append(offsets, r.Offset)
		}
		if h.NextOffset() != recs[len(recs)-1].Offset+1 {
			t.Fatalf("NextOffset %d after record %d", h.NextOffset(), recs[len(recs)-1].Offset)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, off := range offsets {
		if off != int64(i) {
			t.Fatalf("offsets %v not 0..n-1", offsets)
		}
	}
	if int64(len(offsets)) != next {
		t.Fatalf("%d records, want %d", len(offsets), next)
	}

	// A torn tail is reported as ErrShort with its position.
	if err := Split(buf[:len(buf)-3], func(Header, []byte) error { return nil }); !errors.Is(err, ErrShort) {
		t.Fatalf("torn tail: %v", err)
	}
	// An error from the callback stops the walk and comes back as is.
	stop := errors.New("stop")
	if err := Split(buf, func(Header, []byte) error { return stop }); err != stop {
		t.Fatalf("callback error = %v", err)
	}
}

func TestParseHeaderRejects(t *testing.T) {
	t.Parallel()
	b := mustBuild(t, sampleRecords(), NoProducer)
	bad := func(mutate func(c []byte)) []byte {
		c := bytes.Clone(b)
		mutate(c)
		return c
	}
	cases := map[string][]byte{
		"magic 1":          bad(func(c []byte) { c[offMagic] = 1 }),
		"length too small": bad(func(c []byte) { putUint32(c[offLength:], 10) }),
		"codec 5":          bad(func(c []byte) { c[offAttributes+1] |= 5 }),
		"negative count":   bad(func(c []byte) { putUint32(c[offNumRecords:], 0xffffffff) }),
		"negative delta":   bad(func(c []byte) { putUint32(c[offLastOffsetDelta:], 0x80000000) }),
	}
	for name, c := range cases {
		if _, err := ParseHeader(c); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	// Base offset and leader epoch sit outside the CRC.
	c := bytes.Clone(b)
	SetBaseOffset(c, 1<<40)
	SetLeaderEpoch(c, 99)
	if h, err := Validate(c); err != nil || h.BaseOffset != 1<<40 || h.LeaderEpoch != 99 {
		t.Fatalf("after rewriting base offset and epoch: %+v %v", h, err)
	}
}
