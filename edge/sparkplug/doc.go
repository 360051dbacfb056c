// Package sparkplug reads Sparkplug B traffic at the edge: it names the parts
// of a Sparkplug topic, decodes the protobuf payload within fixed bounds,
// keeps each edge node's birth state so that later data can be checked and
// its aliases resolved, and renders a payload as JSON for consumers that
// cannot parse protobuf.
//
// # The model, smallest piece first
//
// A Sparkplug edge node publishes under
//
//	spBv1.0/<group>/<type>/<edge node>[/<device>]
//
// where type is one of NBIRTH, NDEATH, NDATA, NCMD (about the node itself) or
// DBIRTH, DDEATH, DDATA, DCMD (about one device behind the node). Host
// applications announce themselves on spBv1.0/STATE/<host id> with a JSON
// body. [ParseTopic] splits a topic into a [Topic] and refuses anything else.
//
// Every payload except STATE is one protobuf Payload message: a send time, a
// list of metrics, a sequence number and an optional opaque body. A metric has
// a name, or a numeric alias standing for a name, a datatype, flags and one
// value. The schema is Eclipse Tahu's sparkplug_b.proto (Sparkplug 3.0,
// EPL-2.0, from github.com/eclipse/tahu, path sparkplug_b/sparkplug_b.proto),
// kept next to this file; sparkplug_b.pb.go is generated from it with the
// opaque Go API, so fields are read through GetX/HasX methods. [Decode] takes
// flat payloads (scalar values only, as every NDATA is) on a direct path over
// the wire bytes; anything else is first walked once to count metrics, nested
// structures and their depth against [Limits] before the protobuf library
// allocates anything, so a hostile payload costs at most a bounded multiple of
// its own size (under 100× in the worst shapes, a few MB at the defaults).
//
// A node's session begins with an NBIRTH naming every metric it will report,
// with its datatype and usually an alias, plus a "bdSeq" metric. Later NDATA
// messages may carry only aliases, so they mean nothing without the birth. Each
// device's DBIRTH does the same for the device's metrics. seq counts 0 to 255
// and wraps, per node, across NBIRTH, NDATA, DBIRTH, DDATA and DDEATH: a gap
// means a message was lost. NDEATH is the node's MQTT will, registered before
// the NBIRTH was sent, and carries no seq; its bdSeq must equal the birth's,
// otherwise it is the late will of an earlier session and the node is still
// alive. NCMD and DCMD travel the other way (host to node) and are not
// sequenced.
//
// A [Tracker] keeps that birth state per (group, edge node): bdSeq, the last
// seq, the alias table of the node and of each device, and whether the node
// and each device are alive. [Tracker.Observe] updates it and returns a
// [Result] whose flags — a seq gap, data before a birth, an alias no birth
// defined, a bdSeq mismatch, a birth too large to keep — become Kafka record
// headers ([Result.Headers]) and metric labels ([Result.Anomalies]). Nothing
// is ever dropped: a flagged message is stored like any other, and the
// consumer decides. The tracker's memory is bounded by [TrackerLimits]: the
// least recently seen node is forgotten when a new one would exceed MaxNodes
// or the byte budget, and aliases beyond a node's budget are refused with a
// flag. [Tracker.Counters] totals the flags for export as metrics.
//
// # Restarts
//
// The tracker lives in memory. The edge stores every message as received, so
// at start-up the caller replays the stored NBIRTH and DBIRTH records (and,
// if it has them, the NDEATH and DDEATH records after them) in log order
// through [Tracker.Restore]. Restore rebuilds alias tables, bdSeq and
// liveness exactly as Observe would, but flags nothing, counts nothing as an
// anomaly and leaves the seq expectation unknown: the data the node sent
// between its birth and the restart has gone by unobserved, so the first
// sequenced message after a restore sets the expectation instead of being
// reported as a gap. Restore ignores every other type, so replaying all the
// stored Sparkplug records is also correct, only slower; replaying just each
// node's records from its latest NBIRTH on gives the same state. Replay must
// finish before live messages are observed. Log order matters only per
// node: when a rule's key spreads a node's records over partitions, a
// DBIRTH replayed before its NBIRTH keeps its aliases (the device then
// counts as not alive until it is born again, a flag but no lost names).
//
// # Rendering
//
// [RenderJSON] produces one JSON object per message, with aliases resolved
// through the tracker; its shape is documented on the function and does not
// vary with the content: every key is always present, null when absent.
//
// [Builder] makes well-formed payloads for one node session, counting seq as
// a real node does, for tests, the simulator and end-to-end checks.
//
// # Regenerating
//
// The generated code comes from protoc (libprotoc 3.21.12 here) with
// protoc-gen-go v1.36.12, the version of google.golang.org/protobuf in go.mod:
//
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//	go generate ./edge/sparkplug/
package sparkplug

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go_opt=default_api_level=API_OPAQUE sparkplug_b.proto
