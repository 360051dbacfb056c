package recordbatch

import (
	"math/rand/v2"
	"testing"
)

// benchRecords is the shape of a typical edge batch: 256 sensor readings
// of 100 bytes keyed by device.
func benchRecords() []Record {
	return randomRecords(rand.New(rand.NewPCG(7, 8)), 256, 100)
}

var benchCodecs = []int{CompressionNone, CompressionLZ4, CompressionZstd}

// perCodec runs bench as a sub-benchmark per codec of benchCodecs, on
// benchRecords built with that codec, reporting bytes of record data and
// allocations.
func perCodec(b *testing.B, bench func(b *testing.B, recs []Record, opts BuildOptions)) {
	recs := benchRecords()
	for _, codec := range benchCodecs {
		b.Run(CodecName(codec), func(b *testing.B) {
			opts := NoProducer
			opts.Compression = codec
			b.SetBytes(int64(len(recs) * 100))
			b.ReportAllocs()
			bench(b, recs, opts)
		})
	}
}

func BenchmarkBuild(b *testing.B) {
	perCodec(b, func(b *testing.B, recs []Record, opts BuildOptions) {
		out := mustBuild(b, recs, opts)
		for b.Loop() {
			if _, err := Build(recs, opts); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(out)), "batch-bytes")
	})
}

// BenchmarkAppendBuild is BenchmarkBuild into one reused buffer, as the
// edge's partition writer builds.
func BenchmarkAppendBuild(b *testing.B) {
	perCodec(b, func(b *testing.B, recs []Record, opts BuildOptions) {
		var buf []byte
		for b.Loop() {
			var err error
			if buf, err = AppendBuild(buf[:0], recs, opts); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkRecords(b *testing.B) {
	perCodec(b, func(b *testing.B, recs []Record, opts BuildOptions) {
		batch := mustBuild(b, recs, opts)
		for b.Loop() {
			got, err := Records(batch)
			if err != nil || len(got) != len(recs) {
				b.Fatalf("%d records, %v", len(got), err)
			}
		}
	})
}

func BenchmarkRecompress(b *testing.B) {
	batch := mustBuild(b, benchRecords(), NoProducer)
	for _, codec := range benchCodecs[1:] {
		b.Run(CodecName(codec), func(b *testing.B) {
			b.SetBytes(int64(len(batch)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Recompress(batch, codec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
