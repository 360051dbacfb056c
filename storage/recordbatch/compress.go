package recordbatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// MaxDecompressedSize bounds what one batch may decompress to. A batch
// claiming more is treated as corrupt: without the bound a few kilobytes of
// crafted gzip or zstd could make a broker allocate gigabytes.
const MaxDecompressedSize = 64 << 20

// xerialMagic starts the snappy framing the Java client (snappy-java's
// SnappyOutputStream) writes: magic, version 1, min compatible version 1,
// then chunks of [uint32 big-endian length][raw snappy block].
var xerialMagic = []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0}

const (
	xerialHeaderSize = 16
	// xerialBlockSize is the chunk size snappy-java writes; using the same
	// keeps every chunk small enough for any reader.
	xerialBlockSize = 32 << 10
)

// Encoders and decoders carry large internal state; reusing them keeps a
// busy bridge or broker from allocating hundreds of kilobytes per batch.
var (
	gzipWriters = sync.Pool{New: func() any {
		w, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression)
		return w
	}}
	gzipReaders = sync.Pool{New: func() any { return new(gzip.Reader) }}
	lz4Writers  = sync.Pool{New: func() any {
		w := lz4.NewWriter(nil)
		// Kafka's Java client writes 64 KiB blocks; the lz4 default of
		// 4 MiB would allocate far more than a typical batch needs.
		_ = w.Apply(lz4.BlockSizeOption(lz4.Block64Kb), lz4.ConcurrencyOption(1))
		return w
	}}
	lz4Readers = sync.Pool{New: func() any { return lz4.NewReader(nil) }}

	// zstd encoders and decoders are safe for concurrent EncodeAll and
	// DecodeAll and pool their own state internally, so one of each is
	// shared. They are built on first use to keep start-up cheap.
	zstdOnce    sync.Once
	zstdEncoder *zstd.Encoder
	zstdDecoder *zstd.Decoder
	zstdErr     error
)

func zstdCodecs() (*zstd.Encoder, *zstd.Decoder, error) {
	zstdOnce.Do(func() {
		zstdEncoder, zstdErr = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedDefault),
			// Batches are at most a few MiB; a small window keeps the
			// encoder's per-call memory small.
			zstd.WithWindowSize(1<<20),
		)
		if zstdErr != nil {
			zstdErr = fmt.Errorf("zstd encoder: %w", zstdErr)
			return
		}
		zstdDecoder, zstdErr = zstd.NewReader(nil,
			zstd.WithDecoderMaxMemory(MaxDecompressedSize),
			zstd.WithDecoderMaxWindow(MaxDecompressedSize),
			// DecodeAll calls beyond this many wait, so allow one per CPU.
			zstd.WithDecoderConcurrency(0),
		)
		if zstdErr != nil {
			zstdErr = fmt.Errorf("zstd decoder: %w", zstdErr)
		}
	})
	return zstdEncoder, zstdDecoder, zstdErr
}

// CodecName is the Kafka name of a compression codec id.
func CodecName(codec int) string {
	switch codec {
	case CompressionNone:
		return "none"
	case CompressionGzip:
		return "gzip"
	case CompressionSnappy:
		return "snappy"
	case CompressionLZ4:
		return "lz4"
	case CompressionZstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", codec)
}

// ParseCodec turns a Kafka codec name ("none", "gzip", "snappy", "lz4",
// "zstd"; "" means none) into its id, for configs and flags.
func ParseCodec(name string) (int, error) {
	switch name {
	case "", "none":
		return CompressionNone, nil
	case "gzip":
		return CompressionGzip, nil
	case "snappy":
		return CompressionSnappy, nil
	case "lz4":
		return CompressionLZ4, nil
	case "zstd":
		return CompressionZstd, nil
	}
	return 0, fmt.Errorf("recordbatch: unknown compression codec %q", name)
}

// Compress encodes raw with codec (one of the Compression* constants).
// CompressionNone returns raw itself.
func Compress(codec int, raw []byte) ([]byte, error) {
	return appendCompressed(nil, codec, raw)
}

// appendCompressed appends raw compressed with codec to dst.
func appendCompressed(dst []byte, codec int, raw []byte) ([]byte, error) {
	switch codec {
	case CompressionNone:
		if dst == nil {
			return raw, nil
		}
		return append(dst, raw...), nil
	case CompressionGzip:
		return appendStream[*gzip.Writer](dst, &gzipWriters, "gzip", raw)
	case CompressionSnappy:
		return appendXerial(dst, raw), nil
	case CompressionLZ4:
		return appendStream[*lz4.Writer](dst, &lz4Writers, "lz4", raw)
	case CompressionZstd:
		enc, _, err := zstdCodecs()
		if err != nil {
			return nil, fmt.Errorf("recordbatch: zstd compress: %w", err)
		}
		return enc.EncodeAll(raw, dst), nil
	}
	return nil, fmt.Errorf("recordbatch: compress: unknown codec %d", codec)
}

// appendStream appends raw to dst compressed by a stream writer (gzip's or
// lz4's) taken from pool.
func appendStream[W interface {
	io.WriteCloser
	Reset(io.Writer)
}](dst []byte, pool *sync.Pool, name string, raw []byte) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	w := pool.Get().(W)
	defer pool.Put(w)
	w.Reset(buf)
	if _, err := w.Write(raw); err != nil {
		return nil, fmt.Errorf("recordbatch: %s compress: %w", name, err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("recordbatch: %s compress: %w", name, err)
	}
	return buf.Bytes(), nil
}

// appendXerial writes the snappy framing the Java producer writes, which
// every Kafka client (Java, librdkafka, franz-go, sarama) decodes.
func appendXerial(dst, raw []byte) []byte {
	dst = append(dst, xerialMagic...)
	dst = binary.BigEndian.AppendUint32(dst, 1) // version
	dst = binary.BigEndian.AppendUint32(dst, 1) // minimum compatible version
	for len(raw) > 0 {
		n := min(xerialBlockSize, len(raw))
		at := len(dst)
		dst = append(dst, make([]byte, 4+snappy.MaxEncodedLen(n))...)
		block := snappy.Encode(dst[at+4:], raw[:n])
		binary.BigEndian.PutUint32(dst[at:], uint32(len(block)))
		dst = dst[:at+4+len(block)]
		raw = raw[n:]
	}
	return dst
}

// Decompress decodes data compressed with codec. The result is never
// larger than MaxDecompressedSize; bad or oversized input gives an error
// wrapping ErrCorrupt. CompressionNone returns data itself.
func Decompress(codec int, data []byte) ([]byte, error) {
	out, err := decompress(codec, data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrCorrupt, CodecName(codec), err)
	}
	return out, nil
}

var errTooLarge = fmt.Errorf("decompresses to more than %d bytes", MaxDecompressedSize)

func decompress(codec int, data []byte) ([]byte, error) {
	switch codec {
	case CompressionNone:
		return data, nil
	case CompressionGzip:
		r := gzipReaders.Get().(*gzip.Reader)
		defer gzipReaders.Put(r)
		if err := r.Reset(bytes.NewReader(data)); err != nil {
			return nil, err
		}
		return readBounded(r)
	case CompressionSnappy:
		if len(data) >= xerialHeaderSize && bytes.HasPrefix(data, xerialMagic) {
			return decodeXerial(data[xerialHeaderSize:])
		}
		return decodeSnappyBlock(nil, data)
	case CompressionLZ4:
		r := lz4Readers.Get().(*lz4.Reader)
		defer lz4Readers.Put(r)
		r.Reset(bytes.NewReader(data))
		return readBounded(r)
	case CompressionZstd:
		_, dec, err := zstdCodecs()
		if err != nil {
			return nil, err
		}
		// The decoder's max-memory option rejects frames over the bound
		// before allocating for them.
		out, err := dec.DecodeAll(data, nil)
		if err != nil {
			if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
				return nil, fmt.Errorf("%w: %w", errTooLarge, err)
			}
			return nil, err
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown codec %d", codec)
}

// readBounded reads r to the end, refusing output over MaxDecompressedSize.
func readBounded(r io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, MaxDecompressedSize+1))
	if err != nil {
		return nil, err
	}
	if n > MaxDecompressedSize {
		return nil, errTooLarge
	}
	return buf.Bytes(), nil
}

// decodeSnappyBlock appends one raw snappy block to dst, checking the
// length the block claims before anything is allocated for it.
func decodeSnappyBlock(dst, block []byte) ([]byte, error) {
	n, err := snappy.DecodedLen(block)
	if err != nil {
		return nil, err
	}
	if n > MaxDecompressedSize-len(dst) {
		return nil, errTooLarge
	}
	if cap(dst)-len(dst) < n {
		dst = append(make([]byte, 0, len(dst)+n), dst...)
	}
	out, err := snappy.Decode(dst[len(dst):cap(dst)], block)
	if err != nil {
		return nil, err
	}
	return dst[:len(dst)+len(out)], nil
}

// decodeXerial decodes the chunks after the xerial header. It sums the
// claimed sizes first so the output is allocated once and bounded.
func decodeXerial(chunks []byte) ([]byte, error) {
	total := 0
	for rest := chunks; len(rest) > 0; {
		if len(rest) < 4 {
			return nil, errors.New("xerial: truncated chunk length")
		}
		size := binary.BigEndian.Uint32(rest)
		rest = rest[4:]
		if uint64(size) > uint64(len(rest)) {
			return nil, fmt.Errorf("xerial: chunk of %d bytes with %d left", size, len(rest))
		}
		n, err := snappy.DecodedLen(rest[:size])
		if err != nil {
			return nil, fmt.Errorf("xerial: %w", err)
		}
		if total += n; total > MaxDecompressedSize {
			return nil, errTooLarge
		}
		rest = rest[size:]
	}
	out := make([]byte, 0, total)
	for len(chunks) > 0 {
		size := binary.BigEndian.Uint32(chunks)
		chunks = chunks[4:]
		var err error
		if out, err = decodeSnappyBlock(out, chunks[:size]); err != nil {
			return nil, fmt.Errorf("xerial: %w", err)
		}
		chunks = chunks[size:]
	}
	return out, nil
}
