package recordbatch

// RecordHeader is one key/value header of a record.
type RecordHeader struct {
	Key   string
	Value []byte
}

// Record is one decoded record.
type Record struct {
	Offset    int64  // absolute offset (filled by Records)
	Timestamp int64  // ms since epoch
	Key       []byte // nil for no key
	Value     []byte // nil is a tombstone
	Headers   []RecordHeader
}

// BuildOptions control batch building.
type BuildOptions struct {
	Compression   int   // CompressionNone, Gzip, Snappy, LZ4, Zstd
	BaseOffset    int64 // usually 0; the log assigns offsets
	ProducerID    int64 // -1 for none
	ProducerEpoch int16 // -1 for none
	BaseSequence  int32 // -1 for none
	LeaderEpoch   int32 // -1 for none
}

// NoProducer is BuildOptions for a batch without idempotence.
var NoProducer = BuildOptions{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, LeaderEpoch: -1}

// Build encodes records as one RecordBatch v2 with a valid CRC. Offsets in
// the batch are 0..n-1 relative to opts.BaseOffset; FirstTimestamp and
// MaxTimestamp come from the records.
func Build(records []Record, opts BuildOptions) ([]byte, error) { panic("not implemented") }

// Records decodes (and decompresses) all records of one batch.
func Records(batch []byte) ([]Record, error) { panic("not implemented") }
