package recordbatch

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// These tests hold our encoder and decoder against franz-go's: kmsg for
// the batch and record layout, kgo's default compressor and decompressor
// for the codecs. Agreement with a real, widely used client is the check
// that we speak Kafka and not merely agree with ourselves.

var kgoCodecs = map[int]kgo.CompressionCodec{
	CompressionGzip:   kgo.GzipCompression(),
	CompressionSnappy: kgo.SnappyCompression(),
	CompressionLZ4:    kgo.Lz4Compression(),
	CompressionZstd:   kgo.ZstdCompression(),
}

// franzBuild encodes records the way franz-go's producer lays them out.
func franzBuild(t *testing.T, recs []Record, codec int, baseOffset int64) []byte {
	t.Helper()
	var raw []byte
	maxTS := recs[0].Timestamp
	for i, r := range recs {
		maxTS = max(maxTS, r.Timestamp)
		kr := kmsg.Record{
			TimestampDelta64: r.Timestamp - recs[0].Timestamp,
			OffsetDelta:      int32(i),
			Key:              r.Key,
			Value:            r.Value,
		}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		// Length counts the bytes after itself: encode once with 0 (one
		// varint byte) to measure.
		kr.Length = int32(len(kr.AppendTo(nil)) - 1)
		raw = kr.AppendTo(raw)
	}
	records := raw
	if codec != CompressionNone {
		c, err := kgo.DefaultCompressor(kgoCodecs[codec])
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		out, used := c.Compress(&buf, raw)
		if int(used) != codec {
			t.Fatalf("kgo compressed with codec %d, asked for %d", used, codec)
		}
		records = bytes.Clone(out)
	}
	rb := kmsg.RecordBatch{
		FirstOffset:          baseOffset,
		PartitionLeaderEpoch: 4,
		Magic:                2,
		Attributes:           int16(codec),
		LastOffsetDelta:      int32(len(recs) - 1),
		FirstTimestamp:       recs[0].Timestamp,
		MaxTimestamp:         maxTS,
		ProducerID:           12,
		ProducerEpoch:        2,
		FirstSequence:        100,
		NumRecords:           int32(len(recs)),
		Records:              records,
	}
	b := rb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

// franzRecords decodes a batch with franz-go's types, mirroring how kgo
// reads fetched batches.
func franzRecords(t *testing.T, b []byte) (kmsg.RecordBatch, []kmsg.Record) {
	t.Helper()
	var rb kmsg.RecordBatch
	if err := rb.ReadFrom(b); err != nil {
		t.Fatalf("kmsg cannot read our batch: %v", err)
	}
	if rb.Magic != 2 || int(rb.Length) != len(b)-12 {
		t.Fatalf("kmsg sees magic %d length %d for %d bytes", rb.Magic, rb.Length, len(b))
	}
	if got := crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)); uint32(rb.CRC) != got {
		t.Fatalf("crc %08x, computed %08x", uint32(rb.CRC), got)
	}
	raw := rb.Records
	if codec := rb.Attributes & 7; codec != 0 {
		var err error
		raw, err = kgo.DefaultDecompressor().Decompress(rb.Records, kgo.CompressionCodecType(codec))
		if err != nil {
			t.Fatalf("kgo cannot decompress our %s batch: %v", CodecName(int(codec)), err)
		}
	}
	var out []kmsg.Record
	for len(raw) > 0 {
		length, n := kbin.Varint(raw)
		if n <= 0 || length < 0 || int(length)+n > len(raw) {
			t.Fatalf("bad record length at record %d", len(out))
		}
		var r kmsg.Record
		if err := r.ReadFrom(raw[:n+int(length)]); err != nil {
			t.Fatalf("kmsg cannot read record %d: %v", len(out), err)
		}
		out = append(out, r)
		raw = raw[n+int(length):]
	}
	if len(out) != int(rb.NumRecords) {
		t.Fatalf("kmsg found %d records, batch says %d", len(out), rb.NumRecords)
	}
	return rb, out
}

func crossCheckSets() map[string][]Record {
	return map[string][]Record{
		"sample": sampleRecords(),
		"large":  randomRecords(rand.New(rand.NewPCG(3, 4)), 200, 700),
	}
}

func TestFranzGoBatchesDecode(t *testing.T) {
	t.Parallel()
	for name, recs := range crossCheckSets() {
		for _, codec := range allCodecs {
			t.Run(name+"/"+CodecName(codec), func(t *testing.T) {
				b := franzBuild(t, recs, codec, 300)
				h, err := Validate(b)
				if err != nil {
					t.Fatalf("Validate rejects franz-go's batch: %v", err)
				}
				if h.ProducerID != 12 || h.ProducerEpoch != 2 || h.BaseSequence != 100 || h.LeaderEpoch != 4 || h.Compression() != codec {
					t.Fatalf("header = %+v", h)
				}
				got, err := Records(b)
				if err != nil {
					t.Fatalf("Records of franz-go's batch: %v", err)
				}
				sameRecords(t, got, recs, 300)
			})
		}
	}
}

func TestOurBatchesDecodeInFranzGo(t *testing.T) {
	t.Parallel()
	for name, recs := range crossCheckSets() {
		for _, codec := range allCodecs {
			t.Run(name+"/"+CodecName(codec), func(t *testing.T) {
				opts := BuildOptions{Compression: codec, BaseOffset: 9, ProducerID: 5, ProducerEpoch: 6, BaseSequence: 7, LeaderEpoch: 8}
				b := mustBuild(t, recs, opts)
				rb, krs := franzRecords(t, b)
				if rb.FirstOffset != 9 || rb.ProducerID != 5 || rb.ProducerEpoch != 6 || rb.FirstSequence != 7 || rb.PartitionLeaderEpoch != 8 ||
					int(rb.Attributes) != codec || rb.LastOffsetDelta != int32(len(recs)-1) || rb.FirstTimestamp != recs[0].Timestamp {
					t.Fatalf("kmsg header = %+v", rb)
				}
				got := make([]Record, len(krs))
				for i, kr := range krs {
					got[i] = Record{
						Offset:    rb.FirstOffset + int64(kr.OffsetDelta),
						Timestamp: rb.FirstTimestamp + kr.TimestampDelta64,
						Key:       kr.Key,
						Value:     kr.Value,
					}
					for _, h := range kr.Headers {
						got[i].Headers = append(got[i].Headers, RecordHeader{Key: h.Key, Value: h.Value})
					}
				}
				sameRecords(t, got, recs, 9)

				// Uncompressed, our bytes are exactly franz-go's bytes.
				if codec == CompressionNone {
					want := franzBuild(t, recs, CompressionNone, 9)
					SetLeaderEpoch(want, 8)
					binary.BigEndian.PutUint64(want[43:], 5)
					binary.BigEndian.PutUint16(want[51:], 6)
					binary.BigEndian.PutUint32(want[53:], 7)
					SetCRC(want)
					if !bytes.Equal(b, want) {
						t.Fatal("uncompressed batch differs from franz-go's encoding")
					}
				}
			})
		}
	}
}

// Recompressed batches must still be readable by a real client.
func TestRecompressedBatchesDecodeInFranzGo(t *testing.T) {
	t.Parallel()
	recs := sampleRecords()
	b := mustBuild(t, recs, NoProducer)
	for _, codec := range allCodecs {
		out, err := Recompress(b, codec)
		if err != nil {
			t.Fatal(err)
		}
		_, krs := franzRecords(t, out)
		for i, kr := range krs {
			if !sameBytes(kr.Value, recs[i].Value) || !sameBytes(kr.Key, recs[i].Key) {
				t.Fatalf("%s record %d: kgo sees %q/%q", CodecName(codec), i, kr.Key, kr.Value)
			}
		}
	}
}
