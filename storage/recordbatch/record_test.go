package recordbatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/snappy"

	"github.com/tributary-io/tributary/internal/race"
)

var allCodecs = []int{CompressionNone, CompressionGzip, CompressionSnappy, CompressionLZ4, CompressionZstd}

// sampleRecords covers the shapes that trip encoders: nil vs empty key and
// value, headers with nil and empty values, timestamps that go backwards.
func sampleRecords() []Record {
	return []Record{
		{Timestamp: 1_700_000_000_000, Key: []byte("dev-1"), Value: []byte(`{"t":21.5}`),
			Headers: []RecordHeader{{Key: "content-type", Value: []byte("application/json")}, {Key: "mqtt-topic", Value: []byte("sensors/dev-1/temp")}}},
		{Timestamp: 1_700_000_000_500, Key: nil, Value: []byte("no key")},
		{Timestamp: 1_699_999_999_000, Key: []byte("dev-2"), Value: nil}, // tombstone, earlier time
		{Timestamp: 1_700_000_009_000, Key: []byte{}, Value: []byte{},
			Headers: []RecordHeader{{Key: "", Value: nil}, {Key: "empty", Value: []byte{}}}},
		{Timestamp: 1_700_000_001_000, Key: bytes.Repeat([]byte{0xff}, 300), Value: bytes.Repeat([]byte("v"), 5000)},
	}
}

// randomRecords makes n records with partly compressible payloads.
func randomRecords(rng *rand.Rand, n, valueSize int) []Record {
	out := make([]Record, n)
	base := int64(1_700_000_000_000)
	for i := range out {
		v := make([]byte, valueSize)
		for j := range v {
			if rng.IntN(4) == 0 {
				v[j] = byte(rng.IntN(256))
			} else {
				v[j] = 'a' + byte(j%7)
			}
		}
		out[i] = Record{
			Timestamp: base + int64(i)*10 + rng.Int64N(5),
			Key:       fmt.Appendf(nil, "device-%04d", rng.IntN(1000)),
			Value:     v,
		}
		if i%3 == 0 {
			out[i].Headers = []RecordHeader{{Key: "seq", Value: fmt.Appendf(nil, "%d", i)}}
		}
	}
	return out
}

// sameRecords compares records including the nil-ness of keys, values and
// header values, which Kafka encodes differently (-1 vs 0).
func sameRecords(t *testing.T, got, want []Record, baseOffset int64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Offset != baseOffset+int64(i) {
			t.Fatalf("record %d offset %d, want %d", i, g.Offset, baseOffset+int64(i))
		}
		if g.Timestamp != w.Timestamp {
			t.Fatalf("record %d timestamp %d, want %d", i, g.Timestamp, w.Timestamp)
		}
		if !sameBytes(g.Key, w.Key) || !sameBytes(g.Value, w.Value) {
			t.Fatalf("record %d key/value = %q/%q (nil %v/%v), want %q/%q (nil %v/%v)", i,
				g.Key, g.Value, g.Key == nil, g.Value == nil, w.Key, w.Value, w.Key == nil, w.Value == nil)
		}
		if len(g.Headers) != len(w.Headers) {
			t.Fatalf("record %d has %d headers, want %d", i, len(g.Headers), len(w.Headers))
		}
		for j := range w.Headers {
			if g.Headers[j].Key != w.Headers[j].Key || !sameBytes(g.Headers[j].Value, w.Headers[j].Value) {
				t.Fatalf("record %d header %d = %+v, want %+v", i, j, g.Headers[j], w.Headers[j])
			}
		}
	}
}

// mustBuild is Build, failing the test on an error.
func mustBuild(tb testing.TB, recs []Record, opts BuildOptions) []byte {
	tb.Helper()
	b, err := Build(recs, opts)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func sameBytes(a, b []byte) bool { return (a == nil) == (b == nil) && bytes.Equal(a, b) }

func TestBuildRecordsRoundTripEveryCodec(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	sets := map[string][]Record{
		"sample": sampleRecords(),
		"one":    {{Timestamp: -5, Value: []byte("x")}},
		// Big enough for several snappy chunks and lz4 blocks.
		"large": randomRecords(rng, 300, 1000),
	}
	for name, recs := range sets {
		for _, codec := range allCodecs {
			t.Run(name+"/"+CodecName(codec), func(t *testing.T) {
				opts := BuildOptions{Compression: codec, BaseOffset: 1000, ProducerID: 77, ProducerEpoch: 3, BaseSequence: 41, LeaderEpoch: 9}
				b := mustBuild(t, recs, opts)
				h, err := Validate(b)
				if err != nil {
					t.Fatalf("Validate rejects Build output: %v", err)
				}
				if h.Size() != len(b) {
					t.Fatalf("size %d, batch is %d bytes", h.Size(), len(b))
				}
				minTS, maxTS := recs[0].Timestamp, recs[0].Timestamp
				for _, r := range recs {
					minTS, maxTS = min(minTS, r.Timestamp), max(maxTS, r.Timestamp)
				}
				want := Header{BaseOffset: 1000, Length: int32(len(b) - LogOverhead), LeaderEpoch: 9, Magic: 2, CRC: h.CRC,
					Attributes: int16(codec), LastOffsetDelta: int32(len(recs) - 1), FirstTimestamp: recs[0].Timestamp,
					MaxTimestamp: maxTS, ProducerID: 77, ProducerEpoch: 3, BaseSequence: 41, NumRecords: int32(len(recs))}
				if h != want {
					t.Fatalf("header\n got %+v\nwant %+v", h, want)
				}
				got, err := Records(b)
				if err != nil {
					t.Fatal(err)
				}
				sameRecords(t, got, recs, 1000)

				// Records never alias the batch: scribbling on it must
				// not change what was decoded.
				clear(b)
				sameRecords(t, got, recs, 1000)
			})
		}
	}
}

func TestBuildNoProducer(t *testing.T) {
	t.Parallel()
	b := mustBuild(t, sampleRecords(), NoProducer)
	h, err := Validate(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.ProducerID != -1 || h.ProducerEpoch != -1 || h.BaseSequence != -1 || h.LeaderEpoch != -1 || h.BaseOffset != 0 {
		t.Fatalf("no-producer header = %+v", h)
	}
	// The log assigns offsets by rewriting the base offset; records follow.
	SetBaseOffset(b, 500)
	got, err := Records(b)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, got, sampleRecords(), 500)
}

func TestBuildKeepOffsetsAndAttributes(t *testing.T) {
	t.Parallel()
	recs := []Record{
		{Offset: 103, Timestamp: 1, Key: []byte("a"), Value: []byte("1")},
		{Offset: 105, Timestamp: 2, Key: []byte("b"), Value: []byte("2")},
		{Offset: 110, Timestamp: 3, Key: []byte("c"), Value: nil},
	}
	opts := NoProducer
	opts.BaseOffset = 100
	opts.KeepOffsets = true
	opts.Attributes = TransactionalBit
	opts.Compression = CompressionZstd
	b := mustBuild(t, recs, opts)
	h, err := Validate(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.LastOffsetDelta != 10 || h.NumRecords != 3 || !h.IsTransactional() || h.Compression() != CompressionZstd {
		t.Fatalf("header = %+v", h)
	}
	got, err := Records(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range recs {
		if got[i].Offset != recs[i].Offset || !sameBytes(got[i].Value, recs[i].Value) {
			t.Fatalf("record %d = %+v, want %+v", i, got[i], recs[i])
		}
	}

	for _, bad := range [][]Record{
		{{Offset: 99}},                 // below base
		{{Offset: 101}, {Offset: 101}}, // not increasing
		{{Offset: 100 + 1<<31}},        // delta past int32
	} {
		if _, err := Build(bad, opts); err == nil {
			t.Fatalf("Build accepted offsets %+v", bad)
		}
	}
}

func TestLogAppendTime(t *testing.T) {
	t.Parallel()
	opts := NoProducer
	opts.Attributes = TimestampTypeBit
	b := mustBuild(t, []Record{{Timestamp: 5}, {Timestamp: 9}, {Timestamp: 7}}, opts)
	got, err := Records(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range got {
		if r.Timestamp != 9 {
			t.Fatalf("log-append-time record timestamp %d, want the batch max 9", r.Timestamp)
		}
	}
}

// TestAppendBuild: AppendBuild leaves what dst holds, appends exactly the
// batch Build makes (for every codec, into a reused buffer too), and on
// error gives dst back as it was.
func TestAppendBuild(t *testing.T) {
	t.Parallel()
	recs := sampleRecords()
	for _, codec := range allCodecs {
		t.Run(CodecName(codec), func(t *testing.T) {
			opts := NoProducer
			opts.Compression = codec
			want := mustBuild(t, recs, opts)
			prefix := []byte("earlier bytes")
			dst := append([]byte(nil), prefix...)
			for round := range 3 { // the second and third reuse the first's array
				out, err := AppendBuild(dst, recs, opts)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(out[:len(prefix)], prefix) {
					t.Fatalf("round %d: prefix changed to %q", round, out[:len(prefix)])
				}
				if !bytes.Equal(out[len(prefix):], want) {
					t.Fatalf("round %d: appended batch differs from Build's", round)
				}
				if _, err := Validate(out[len(prefix):]); err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				dst = out[:len(prefix)]
			}
			bad := NoProducer
			bad.Compression = 9
			out, err := AppendBuild(dst, recs, bad)
			if err == nil || !bytes.Equal(out, prefix) {
				t.Fatalf("bad codec: %q, %v; want the prefix back and an error", out, err)
			}
		})
	}
}

func TestBuildRejects(t *testing.T) {
	t.Parallel()
	if _, err := Build(nil, NoProducer); err == nil {
		t.Fatal("empty batch built")
	}
	opts := NoProducer
	opts.Compression = 5
	if _, err := Build(sampleRecords(), opts); err == nil {
		t.Fatal("unknown codec accepted")
	}
	opts = NoProducer
	opts.Attributes = CompressionGzip
	if _, err := Build(sampleRecords(), opts); err == nil {
		t.Fatal("compression bits in Attributes accepted")
	}
}

func TestCompressDecompressEveryCodec(t *testing.T) {
	t.Parallel()
	inputs := [][]byte{
		{},
		[]byte("hello"),
		bytes.Repeat([]byte("tributary "), 20000), // 200 KB, several blocks
	}
	for _, codec := range allCodecs {
		for _, in := range inputs {
			c, err := Compress(codec, in)
			if err != nil {
				t.Fatalf("%s compress: %v", CodecName(codec), err)
			}
			out, err := Decompress(codec, c)
			if err != nil {
				t.Fatalf("%s decompress: %v", CodecName(codec), err)
			}
			if !bytes.Equal(out, in) {
				t.Fatalf("%s round trip of %d bytes gave %d bytes", CodecName(codec), len(in), len(out))
			}
			if codec != CompressionNone && len(in) > 1000 && len(c) >= len(in)/4 {
				t.Fatalf("%s compressed %d repetitive bytes to %d", CodecName(codec), len(in), len(c))
			}
		}
	}
	if _, err := Compress(9, nil); err == nil {
		t.Fatal("unknown codec compressed")
	}
	if _, err := Decompress(9, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("unknown codec decompress: %v", err)
	}
}

func TestParseCodec(t *testing.T) {
	t.Parallel()
	for _, codec := range allCodecs {
		got, err := ParseCodec(CodecName(codec))
		if err != nil || got != codec {
			t.Fatalf("ParseCodec(%q) = %d, %v", CodecName(codec), got, err)
		}
	}
	if _, err := ParseCodec("brotli"); err == nil {
		t.Fatal("unknown codec name accepted")
	}
}

func TestSnappyRawBlockAndXerial(t *testing.T) {
	t.Parallel()
	in := bytes.Repeat([]byte("abcdefgh"), 10000) // 80 KB: three xerial chunks
	x, _ := Compress(CompressionSnappy, in)
	if !bytes.HasPrefix(x, xerialMagic) {
		t.Fatal("snappy output is not xerial framed")
	}
	// Raw snappy blocks (what librdkafka and older franz-go send) decode too.
	raw := snappy.Encode(nil, in)
	out, err := Decompress(CompressionSnappy, raw)
	if err != nil || !bytes.Equal(out, in) {
		t.Fatalf("raw snappy: %d bytes, %v", len(out), err)
	}
	// Truncated framing is corrupt, not a panic.
	for _, cut := range []int{17, 19, 20, 40, len(x) - 1} {
		if _, err := Decompress(CompressionSnappy, x[:cut]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("xerial cut at %d: %v", cut, err)
		}
	}
}

func TestRecompress(t *testing.T) {
	t.Parallel()
	recs := sampleRecords()
	opts := BuildOptions{BaseOffset: 42, ProducerID: 5, ProducerEpoch: 1, BaseSequence: 10, LeaderEpoch: 3, Attributes: TransactionalBit}
	src := mustBuild(t, recs, opts)
	srcHeader, _ := Validate(src)
	prev := src
	// none → every codec → every codec, chained, so each codec is both the
	// source and the target of a re-encoding.
	for _, codec := range append(allCodecs[1:], allCodecs...) {
		out, err := Recompress(prev, codec)
		if err != nil {
			t.Fatalf("recompress to %s: %v", CodecName(codec), err)
		}
		h, err := Validate(out)
		if err != nil {
			t.Fatalf("recompressed %s batch invalid: %v", CodecName(codec), err)
		}
		want := srcHeader
		want.Attributes = srcHeader.Attributes | int16(codec)
		want.Length, want.CRC = h.Length, h.CRC
		if h != want {
			t.Fatalf("recompressed %s header\n got %+v\nwant %+v", CodecName(codec), h, want)
		}
		got, err := Records(out)
		if err != nil {
			t.Fatal(err)
		}
		sameRecords(t, got, recs, 42)
		prev = out
	}
	// The source is left alone.
	if h, err := Validate(src); err != nil || h != srcHeader {
		t.Fatalf("source batch changed: %+v %v", h, err)
	}
	if _, err := Recompress(src, 7); err == nil {
		t.Fatal("recompress to unknown codec")
	}
	if _, err := Recompress(src[:len(src)-1], CompressionLZ4); !errors.Is(err, ErrShort) {
		t.Fatalf("recompress of a truncated batch: %v", err)
	}
}

func TestTruncatedAndCorruptBatches(t *testing.T) {
	t.Parallel()
	for _, codec := range allCodecs {
		opts := NoProducer
		opts.Compression = codec
		b := mustBuild(t, sampleRecords(), opts)
		for n := 0; n < len(b); n++ {
			if _, err := Validate(b[:n]); !errors.Is(err, ErrShort) {
				t.Fatalf("%s: Validate of %d/%d bytes = %v, want ErrShort", CodecName(codec), n, len(b), err)
			}
			if _, err := Records(b[:n]); err == nil {
				t.Fatalf("%s: Records of %d/%d bytes succeeded", CodecName(codec), n, len(b))
			}
		}
		// Any flipped bit in the CRC-covered region fails the CRC.
		for i := crcStart; i < len(b); i += 1 + len(b)/200 {
			c := bytes.Clone(b)
			c[i] ^= 0x10
			if _, err := Records(c); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: flipped byte %d: %v", CodecName(codec), i, err)
			}
			// With the CRC patched, the damage reaches the decoders:
			// they may accept or refuse it, but must not panic.
			SetCRC(c)
			_, _ = Records(c)
		}
	}
}

// rebuild patches the header fields then fixes length and CRC, so the
// record decoder (not the CRC check) sees the damage.
func rebuild(b []byte, mutate func(h []byte) []byte) []byte {
	c := mutate(bytes.Clone(b))
	putUint32(c[offLength:], uint32(len(c)-LogOverhead))
	SetCRC(c)
	return c
}

func putUint32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}

func TestRecordLevelCorruption(t *testing.T) {
	t.Parallel()
	b := mustBuild(t, sampleRecords(), NoProducer)
	cases := map[string]func([]byte) []byte{
		"more records claimed": func(c []byte) []byte { putUint32(c[offNumRecords:], 6); return c },
		"huge record count":    func(c []byte) []byte { putUint32(c[offNumRecords:], 1<<31-1); return c },
		"fewer records claimed": func(c []byte) []byte {
			putUint32(c[offNumRecords:], 4)
			return c
		},
		"trailing garbage": func(c []byte) []byte { return append(c, 0) },
		"record length wrong": func(c []byte) []byte {
			c[HeaderSize] = 0x7e // zig-zag 63: longer than the first record
			return c
		},
		"negative record length": func(c []byte) []byte { c[HeaderSize] = 0x01; return c },
		"unterminated varint": func(c []byte) []byte {
			return append(c[:HeaderSize], 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
		},
		"no record bytes": func(c []byte) []byte { return c[:HeaderSize] },
	}
	for name, mutate := range cases {
		c := rebuild(b, mutate)
		if _, err := Validate(c); err != nil {
			t.Fatalf("%s: setup broke the header: %v", name, err)
		}
		if _, err := Records(c); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: Records = %v, want ErrCorrupt", name, err)
		}
	}
	// A compressed payload that is not what the codec says.
	for _, codec := range allCodecs[1:] {
		c := rebuild(b, func(c []byte) []byte {
			c[offAttributes+1] |= byte(codec)
			return c
		})
		if _, err := Records(c); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s flag on plain records: %v", CodecName(codec), err)
		}
	}
}

func TestDecompressionBombsRefused(t *testing.T) {
	t.Parallel()
	// Each bomb is 65 copies of 1 MiB of zeros, concatenated the way the
	// codec allows, so it decodes to just over MaxDecompressedSize while
	// the test itself compresses only 1 MiB per codec.
	zeros := make([]byte, 1<<20)
	copies := MaxDecompressedSize/len(zeros) + 1
	for _, codec := range []int{CompressionGzip, CompressionLZ4, CompressionZstd, CompressionSnappy} {
		if codec == CompressionZstd && race.Enabled {
			// 64 MiB through the instrumented zstd decoder takes ~10 s;
			// the frame-size claim below still runs under -race.
			continue
		}
		if testing.Short() && codec != CompressionSnappy {
			// Inflating 64 MiB takes 1-2 s per codec; -short keeps the
			// cheapest one (snappy's chunks) and the size claims below.
			continue
		}
		one, err := Compress(codec, zeros)
		if err != nil {
			t.Fatal(err)
		}
		var bomb []byte
		if codec == CompressionSnappy {
			// One xerial stream whose chunks each claim 1 MiB.
			block := snappy.Encode(nil, zeros)
			bomb = append(bomb, xerialMagic...)
			bomb = append(bomb, 0, 0, 0, 1, 0, 0, 0, 1)
			for i := 0; i < copies; i++ {
				bomb = append(bomb, byte(len(block)>>24), byte(len(block)>>16), byte(len(block)>>8), byte(len(block)))
				bomb = append(bomb, block...)
			}
		} else {
			bomb = bytes.Repeat(one, copies)
		}
		if _, err := Decompress(codec, bomb); !errors.Is(err, ErrCorrupt) || !errors.Is(err, errTooLarge) {
			t.Fatalf("%s bomb of %d bytes: err = %v, want ErrCorrupt", CodecName(codec), len(bomb), err)
		}
		// A single copy is fine: the limit is not hit by normal data.
		if out, err := Decompress(codec, one); err != nil || len(out) != len(zeros) {
			t.Fatalf("%s 1 MiB: %d bytes, %v", CodecName(codec), len(out), err)
		}
	}
	// A zstd frame whose header claims 65 MiB is refused before decoding:
	// magic, descriptor (4-byte content size, single segment), the size,
	// then one last RLE block.
	frame := []byte{0x28, 0xb5, 0x2f, 0xfd, 0xa0, 0, 0, 0, 0, 0x0b, 0, 0x08, 0}
	binary.LittleEndian.PutUint32(frame[5:], MaxDecompressedSize+1<<20)
	if _, err := Decompress(CompressionZstd, frame); !errors.Is(err, ErrCorrupt) || !errors.Is(err, errTooLarge) {
		t.Fatalf("zstd size claim: %v", err)
	}
	// A raw snappy block that merely claims a huge size is refused up front.
	claim := []byte{0x80, 0x80, 0x80, 0x80, 0x08} // varint 2 GiB
	if _, err := Decompress(CompressionSnappy, claim); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("snappy size claim: %v", err)
	}
}
