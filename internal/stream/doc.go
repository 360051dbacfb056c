// Package stream owns Tributary's continuous aggregations: windowed
// aggregates (tumbling, hopping, session) and report-by-exception
// (deadband) over offset-addressed input records, written exactly once to
// derived topics.
//
// Smallest piece first:
//
//   - path.go: a field extractor over JSON, CBOR and SenML payloads that
//     walks JSON and CBOR in place without allocating.
//   - config.go: the YAML config, validated with errors that name the field.
//   - agg.go, engine.go: the Engine. It takes Records (topic, partition,
//     offset, key, value, headers, timestamp) and emits Outputs through a
//     callback; it is deterministic, so replaying input after a crash
//     yields byte-identical outputs.
//   - state.go: Engine.Snapshot/Restore, the state together with the input
//     offsets it covers.
//   - runner.go: the exactly-once loop over three small interfaces (Source,
//     Sink, CheckpointStore); kafka.go and checkpoint.go implement them with
//     franz-go (any Kafka cluster) and bbolt.
//
// README.md in this directory explains the design and the guarantees.
package stream
