package storage

import (
	"fmt"

	"github.com/tributary-io/tributary/storage/recordbatch"
)

// Broker-side compression, Kafka's topic compression.type: with a codec set,
// every appended producer batch whose codec differs is re-encoded with it
// before it is written (records, offsets deltas, timestamps and producer
// fields unchanged), so consumers that lack a codec (kafkajs has no zstd)
// can read what a producer compressed with it. Control batches and replica
// appends (KeepOffsets: the leader already did it) are stored as they come.

// keepProducerCodec is compression.type=producer.
const keepProducerCodec = -1

// compressionCodec maps a compression.type value to a codec id, or
// keepProducerCodec for "producer" and "".
func compressionCodec(name string) (int, error) {
	switch name {
	case "", "producer":
		return keepProducerCodec, nil
	case "uncompressed":
		return recordbatch.CompressionNone, nil
	case "gzip", "snappy", "lz4", "zstd":
		return recordbatch.ParseCodec(name)
	}
	return 0, fmt.Errorf("compression %q: want producer, uncompressed, gzip, snappy, lz4 or zstd", name)
}

// recompressBatches returns batches with every non-control batch in the
// topic's codec; the input itself when nothing needs changing.
func recompressBatches(batches []byte, compression string) ([]byte, error) {
	codec, err := compressionCodec(compression)
	if err != nil || codec == keepProducerCodec {
		return batches, err
	}
	need := false
	if err := recordbatch.Split(batches, func(h recordbatch.Header, _ []byte) error {
		need = need || (!h.IsControl() && h.Compression() != codec)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidBatch, err)
	}
	if !need {
		return batches, nil
	}
	out := make([]byte, 0, len(batches))
	err = recordbatch.Split(batches, func(h recordbatch.Header, b []byte) error {
		if h.IsControl() || h.Compression() == codec {
			out = append(out, b...)
			return nil
		}
		nb, err := recordbatch.Recompress(b, codec)
		if err != nil {
			return err
		}
		out = append(out, nb...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: recompress to %s: %w", ErrInvalidBatch, compression, err)
	}
	return out, nil
}
