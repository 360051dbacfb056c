// Package ingest is the mochi-mqtt hook that turns MQTT publishes into
// records in the edge's partition logs: it authenticates devices, enforces
// the publish ACL, decodes and validates payloads (dead-lettering bad ones),
// applies the disk budget, and appends — for QoS 1/2 waiting for the fsync
// before mochi sends the acknowledgement.
package ingest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/tributary-io/tributary/edge/auth"
	"github.com/tributary-io/tributary/edge/dedup"
	"github.com/tributary-io/tributary/edge/payload"
	"github.com/tributary-io/tributary/edge/rules"
	"github.com/tributary-io/tributary/edge/topicmap"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// BudgetPolicy is what happens when the logs reach the disk budget.
type BudgetPolicy string

const (
	// PolicyBlock refuses new publishes until space is freed (by the bridge
	// and retention, or the operator).
	PolicyBlock BudgetPolicy = "block"
	// PolicyDropOldest deletes the oldest segments to make room.
	PolicyDropOldest BudgetPolicy = "drop-oldest"
)

// StreamConfig overrides defaults for one stream.
type StreamConfig struct {
	// Partitions for the stream when it is auto-created.
	Partitions int32 `yaml:"partitions"`
	// ContentType for publishes that do not say (MQTT 3.1.1, or MQTT 5
	// without the content-type property); empty sniffs the payload.
	ContentType string `yaml:"content_type"`
	// Forward is "all" (default: the bridge forwards the stream) or
	// "aggregates-only": the raw records stay on the gateway, with their
	// retention, and only the aggregations over the stream are forwarded.
	Forward string `yaml:"forward"`
}

// Forward settings of a stream.
const (
	ForwardAll            = "all"
	ForwardAggregatesOnly = "aggregates-only"
)

// LocalStreams lists the streams marked forward: aggregates-only.
func (c Config) LocalStreams() []string {
	var out []string
	for name, s := range c.Streams {
		if s.Forward == ForwardAggregatesOnly {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Config tunes the ingest hook.
type Config struct {
	// MaxPayloadBytes refuses larger publishes (default 64 KiB).
	MaxPayloadBytes int `yaml:"max_payload_bytes"`
	// DefaultPartitions for auto-created streams (default 4).
	DefaultPartitions int32 `yaml:"default_partitions"`
	// DeadLetterPartitions for auto-created dead-letter streams (default 1).
	DeadLetterPartitions int32 `yaml:"dead_letter_partitions"`
	// DeadLetterSuffix names a stream's dead-letter stream (default ".dlq").
	DeadLetterSuffix string `yaml:"dead_letter_suffix"`
	// UnmappedStream takes publishes whose topic maps to no stream (default
	// "unmapped"; its dead-letter stream is used).
	UnmappedStream string `yaml:"unmapped_stream"`
	// MaxStreams bounds auto-creation so a misbehaving device cannot fill
	// the disk with topic directories (default 64); publishes that would
	// create more go to the unmapped dead-letter stream. Every stream on
	// disk counts, dead-letter streams included.
	MaxStreams int `yaml:"max_streams"`
	// Streams holds per-stream overrides.
	Streams map[string]StreamConfig `yaml:"streams"`
	// BudgetBytes bounds the bytes of all logs; 0 means no budget.
	BudgetBytes int64 `yaml:"budget_bytes"`
	// BudgetPolicy is block (default) or drop-oldest.
	BudgetPolicy BudgetPolicy `yaml:"budget_policy"`
	// Dedup bounds the re-send detection window.
	Dedup DedupConfig `yaml:"dedup"`
	// Rules map topics to streams, keys and payload formats, in order,
	// before the default rule (topic_map's mapping, format auto).
	Rules []rules.Config `yaml:"rules"`
	// Sparkplug bounds the Sparkplug B birth state kept per edge node.
	Sparkplug SparkplugConfig `yaml:"sparkplug"`
	// ReadLoopAcks turns deferred acknowledgements off (see acks.go): every
	// PUBACK is then sent by mochi's read loop after the fsync, which holds
	// each connection to one QoS 1 publish per fsync.
	ReadLoopAcks bool `yaml:"read_loop_acks"`
}

// DedupConfig tunes the detection of QoS 1 re-sends (see package dedup):
// a reading whose (seq, ts) was stored recently for the same stream and
// device is acknowledged without being stored again.
type DedupConfig struct {
	// Disabled stores every copy.
	Disabled bool `yaml:"disabled"`
	// PerDevice is how many recent (seq, ts) pairs are kept per device
	// (default 64; keep it above mqtt.receive_maximum).
	PerDevice int `yaml:"per_device"`
	// MaxDevices bounds the devices remembered (default 100,000).
	MaxDevices int `yaml:"max_devices"`
	// TailBytes is how much of each partition's end is read at start-up to
	// rebuild the window (default 4 MiB; it must cover the last PerDevice
	// readings of a device for the window to be whole after a restart).
	TailBytes int64 `yaml:"tail_bytes"`
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.MaxPayloadBytes <= 0 {
		c.MaxPayloadBytes = 64 << 10
	}
	if c.DefaultPartitions <= 0 {
		c.DefaultPartitions = 4
	}
	if c.DeadLetterPartitions <= 0 {
		c.DeadLetterPartitions = 1
	}
	if c.DeadLetterSuffix == "" {
		c.DeadLetterSuffix = ".dlq"
	}
	if c.UnmappedStream == "" {
		c.UnmappedStream = "unmapped"
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = 64
	}
	if c.BudgetPolicy == "" {
		c.BudgetPolicy = PolicyBlock
	}
	if c.Dedup.PerDevice <= 0 {
		c.Dedup.PerDevice = dedup.DefaultPerDevice
	}
	if c.Dedup.MaxDevices <= 0 {
		c.Dedup.MaxDevices = dedup.DefaultMaxDevices
	}
	if c.Dedup.TailBytes <= 0 {
		c.Dedup.TailBytes = 4 << 20
	}
	return c
}

// Validate reports settings that cannot work.
func (c Config) Validate() error {
	switch c.BudgetPolicy {
	case "", PolicyBlock, PolicyDropOldest:
	default:
		return fmt.Errorf("budget_policy %q: want block or drop-oldest", c.BudgetPolicy)
	}
	if c.BudgetBytes < 0 {
		return fmt.Errorf("budget_bytes %d is negative", c.BudgetBytes)
	}
	for name, s := range c.Streams {
		if err := topicmap.ValidStream(name); err != nil {
			return fmt.Errorf("streams: %w", err)
		}
		if s.Partitions < 0 {
			return fmt.Errorf("streams: %s: negative partitions", name)
		}
		switch s.Forward {
		case "", ForwardAll, ForwardAggregatesOnly:
		default:
			return fmt.Errorf("streams.%s.forward: %q: want %s or %s", name, s.Forward, ForwardAll, ForwardAggregatesOnly)
		}
	}
	if c.DeadLetterSuffix != "" {
		if err := topicmap.ValidStream("x" + c.DeadLetterSuffix); err != nil {
			return fmt.Errorf("dead_letter_suffix: %w", err)
		}
	}
	if _, err := rules.Compile(c.Rules, 1, rules.JSONSchema); err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	return nil
}

// Record header names (shared reading schema).
const (
	HeaderContentType = "content-type"
	HeaderMQTTTopic   = "mqtt-topic"
	HeaderDevice      = "device"
	HeaderReason      = "reason"
	// HeaderDeviceTime keeps a device time that the rule's window replaced
	// (ms since the epoch, decimal).
	HeaderDeviceTime = "device-time"
	// HeaderValueKind says what a text payload holds: number, bool or text.
	HeaderValueKind = "value-kind"
)

// Hook is the mochi hook. Create it with New and add it to the server with
// AddHook before serving.
type Hook struct {
	mqtt.HookBase

	cfg    Config
	topics *storage.Topics
	auth   *auth.Authenticator
	mapper *topicmap.Mapper
	log    *slog.Logger
	m      *metrics
	ctx    context.Context
	now    func() time.Time

	createMu sync.Mutex
	streams  sync.Map // stream name → *streamState

	dedup   *dedup.Window // nil when disabled
	resends *resendWindow // nil when dedup is disabled
	rules   *rules.Set
	spark   *sparkplugState

	maxPacket uint32   // advertised in MQTT 5 CONNACKs
	willTypes sync.Map // client id → MQTT 5 will content type

	deferAcks  bool        // see acks.go
	subscribed atomic.Bool // a client has subscribed: acknowledge in the read loop
	acks       sync.Map    // *mqtt.Client → *clientAcks

	budgetMu sync.Mutex // one drop-oldest pass at a time

	workers sync.WaitGroup // partition writers and ackers (writer.go)

	// closed refuses new publishes once Drain starts. The hot path only
	// reads it (a shared read lock per publish cost ~7 % of the CPU at
	// 500k msgs/s, its counter bouncing between cores); what must not run
	// after Drain takes a lock Drain waits for: the drop-oldest pass holds
	// gate for reading, stream creation holds createMu, and appends meet
	// stopped writers (errStopping).
	closed atomic.Bool
	gate   sync.RWMutex

	lastDiskFullLog   atomic.Int64
	lastBudgetLog     atomic.Int64
	lastStorageLog    atomic.Int64
	lastDeadLetterLog atomic.Int64

	// appendBatch is the log's own Append; tests swap it to inject disk
	// faults that a real disk cannot be made to produce on demand.
	appendBatch func(l storage.PartitionLog, ctx context.Context, batch []byte, opts storage.AppendOptions) (storage.AppendResult, error)
}

// New builds the hook. ctx bounds fsync waits (cancel it only after Drain
// on a hard stop).
func New(ctx context.Context, cfg Config, topics *storage.Topics, a *auth.Authenticator, mapper *topicmap.Mapper,
	reg prometheus.Registerer, logger *slog.Logger) (*Hook, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ingest config: %w", err)
	}
	h := &Hook{cfg: cfg, topics: topics, auth: a, mapper: mapper, log: logger, ctx: ctx, now: time.Now,
		appendBatch: storage.PartitionLog.Append}
	h.m = newMetrics(reg, func() float64 { return float64(topics.TotalSize()) })
	rs, err := rules.Compile(cfg.Rules, mapper.Levels(), rules.JSONSchema)
	if err != nil {
		return nil, fmt.Errorf("ingest rules: %w", err)
	}
	h.rules = rs
	h.spark = newSparkplugState(cfg.Sparkplug)
	if !cfg.Dedup.Disabled {
		h.resends = newResendWindow(cfg.Dedup.PerDevice, cfg.Dedup.MaxDevices)
		h.dedup = dedup.New(dedup.Config{PerDevice: cfg.Dedup.PerDevice, MaxDevices: cfg.Dedup.MaxDevices})
		h.rebuildDedup()
	}
	h.restoreSparkplug()
	return h, nil
}

// ID names the hook for mochi.
func (h *Hook) ID() string { return "tributary-ingest" }

// Provides lists the hook points used.
func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnSubscribe, mqtt.OnDisconnect,
		mqtt.OnConnect, mqtt.OnSessionEstablished, mqtt.OnPacketEncode, mqtt.OnWillSent, mqtt.OnQosComplete:
		return true
	}
	return false
}

// OnQosComplete learns that mochi wrote the last acknowledgement of a
// publish it answered in the read loop: its PUBACK (QoS 1) or, after the
// PUBREL, its PUBCOMP (QoS 2; a PUBCOMP re-sent on a resumed session comes
// as the PUBCOMP). The packet id is then the client's to reuse (see
// resendWindow). mochi calls this for deliveries to subscribers too, with
// the client's PUBACK or PUBCOMP, whose id is from another space;
// forgetting an entry can only store a re-send twice, never lose a reading.
func (h *Hook) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	switch pk.FixedHeader.Type {
	case packets.Puback, packets.Pubrel, packets.Pubcomp:
	default:
		return
	}
	if h.resends != nil {
		h.resends.drop(cl.ID, pk.PacketID)
	}
}

// tlsConn finds the TLS connection under wrappers that expose NetConn.
func tlsConn(c net.Conn) *tls.Conn {
	for range 4 {
		switch v := c.(type) {
		case *tls.Conn:
			return v
		case interface{ NetConn() net.Conn }:
			c = v.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// OnConnectAuthenticate checks the CONNECT's username and password, or the
// device's TLS client certificate when auth.cert_identity is set.
func (h *Hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	if h.auth.CertIdentity() != "" {
		// A verified client certificate names the device; the CONNECT's
		// username, if any, must agree, and no password is needed.
		if tc := tlsConn(cl.Net.Conn); tc != nil && len(tc.ConnectionState().PeerCertificates) > 0 {
			name, err := h.auth.AuthenticateCert(user, tc.ConnectionState().PeerCertificates[0])
			if err != nil {
				h.m.connects.WithLabelValues("refused").Inc()
				h.m.refusedConnects.WithLabelValues("certificate").Inc()
				h.log.Warn("mqtt connect refused", "client", cl.ID, "username", user, "remote", cl.Net.Remote, "err", err)
				return false
			}
			cl.Properties.Username = []byte(name)
			h.m.connects.WithLabelValues("accepted").Inc()
			return true
		}
	}
	if err := h.auth.Authenticate(user, pk.Connect.Password); err != nil {
		reason := "error"
		switch {
		case errors.Is(err, auth.ErrAnonymous):
			reason = "anonymous"
		case errors.Is(err, auth.ErrUnknownUser):
			reason = "unknown_user"
		case errors.Is(err, auth.ErrBadPassword):
			reason = "bad_password"
		}
		h.m.connects.WithLabelValues("refused").Inc()
		h.m.refusedConnects.WithLabelValues(reason).Inc()
		h.log.Warn("mqtt connect refused", "client", cl.ID, "username", user, "remote", cl.Net.Remote, "err", err)
		return false
	}
	h.m.connects.WithLabelValues("accepted").Inc()
	return true
}

// OnACLCheck lets a device publish and subscribe only under its own topic
// prefix; read_all logins (local consumers) may subscribe to everything.
func (h *Hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true // components inside the gateway (mochi checks deliveries to them too)
	}
	// Anonymous clients (allowed only by config) may publish anywhere: no
	// need to find the topic's device.
	if write && !h.auth.IsDevice(cl.Properties.Username) && h.auth.AllowAnonymous() {
		return true
	}
	user := string(cl.Properties.Username)
	if !write {
		if h.auth.MaySubscribe(user, h.mapper.DeviceOf(topic)) {
			return true
		}
		h.log.Warn("mqtt subscribe refused by ACL", "client", cl.ID, "username", user, "filter", topic)
		return false
	}
	if h.auth.MayPublish(user, h.publishDevice(topic)) {
		return true
	}
	h.m.refused.WithLabelValues(ReasonACL).Inc()
	h.log.Warn("mqtt publish refused by ACL", "client", cl.ID, "username", user, "topic", topic)
	if cl.Properties.ProtocolVersion == 5 {
		// mochi answers an MQTT 5 QoS 1 publish with a refusing PUBACK
		// as soon as this returns: it must not overtake the pending ones.
		h.waitClientAcks(cl)
	}
	return false
}

// publishDevice is the device a publish to topic speaks for: the record
// key of the first matching rule ("" if none matches).
func (h *Hook) publishDevice(topic string) string {
	var c rules.Captures
	r := h.rules.Match(topic, &c)
	if r == nil {
		return ""
	}
	if d := r.Device(&c); d != "" {
		return d
	}
	return r.Key(&c)
}

// waitAcks keeps PUBACK order: a publish answered by mochi's read loop
// waits until the connection's deferred PUBACKs are written.
func (h *Hook) waitAcks(cl *mqtt.Client, pk *packets.Packet) {
	if pk.FixedHeader.Qos > 0 {
		h.waitClientAcks(cl)
	}
}

// waitClientAcks waits until cl's deferred acknowledgements are written.
func (h *Hook) waitClientAcks(cl *mqtt.Client) {
	if !h.deferAcks {
		return
	}
	if a, ok := h.acks.Load(cl); ok {
		a.(*clientAcks).waitEmpty(h.ctx)
	}
}

// OnPublish stores the publish. mochi calls it in the client's read loop and
// writes the PUBACK/PUBREC only after it returns, so on the read-loop path
// returning after the durable append is what makes an acknowledgement a
// promise; on the deferred path (deferPublish) the acker writes the PUBACK
// itself after the fsync and mochi is told to send none.
func (h *Hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	err := h.OnPublishRef(cl, &pk)
	return pk, err
}

// OnPublishRef is OnPublish taking the packet by reference (the patched
// mochi's PublishRefHook): the ~800-byte packets.Packet is not copied into
// the read goroutine's frames, which keeps each connection's read stack at
// 8 KB instead of 16 (third_party/mochi/PATCHES.md, patch 0009).
func (h *Hook) OnPublishRef(cl *mqtt.Client, pk *packets.Packet) error {
	if cl.Net.Inline {
		return nil // the server's own publishes are not readings
	}
	if h.closed.Load() {
		return h.refuse(cl, pk, ReasonClosing, codeShuttingDown, nil)
	}
	if len(pk.Payload) > h.cfg.MaxPayloadBytes {
		return h.refuse(cl, pk, ReasonOversized, codePayloadTooLarge,
			fmt.Errorf("payload %d bytes over the %d limit", len(pk.Payload), h.cfg.MaxPayloadBytes))
	}
	if pk.FixedHeader.Retain && len(pk.Payload) == 0 {
		// The MQTT way to clear a retained message: there is no reading to
		// keep, so nothing is stored; mochi clears the retained copy.
		h.m.retainedClears.Inc()
		h.waitAcks(cl, pk)
		return nil
	}
	start := h.now()
	p := newPending()
	stream, info, deadKind := h.record(cl, pk, start, p)
	var claim dedup.Claim
	var resend resendKey
	if h.dedup != nil && deadKind == "" && info.seqDup && pk.FixedHeader.Qos > 0 {
		// Checked before the budget: a re-send of a stored reading is
		// acknowledged even when nothing new may be appended. QoS 0 is
		// never re-sent (at most once), so it is neither checked nor
		// remembered.
		c, dup, err := h.dedup.Begin(h.ctx, dedup.Key(stream, info.device), info.seq, info.ts)
		if err != nil {
			p.release()
			return h.refuse(cl, pk, ReasonStorage, packets.ErrImplementationSpecificError, err)
		}
		if dup {
			p.release()
			h.m.duplicates.Inc()
			h.waitAcks(cl, pk)
			return nil
		}
		claim = c
	} else if h.resends != nil && pk.FixedHeader.Qos > 0 {
		// Without a seq, an MQTT re-send (DUP, same client, packet id and
		// payload) of a publish stored in this session is recognised.
		resend = h.resends.key(cl.ID, pk.PacketID, pk.Payload)
		if pk.FixedHeader.Dup && h.resends.seen(resend) {
			p.release()
			h.m.duplicates.Inc()
			h.waitAcks(cl, pk)
			return nil
		}
	}
	if err := h.admit(); err != nil {
		p.release()
		claim.Done(false)
		if errors.Is(err, errStopping) {
			return h.refuse(cl, pk, ReasonClosing, codeShuttingDown, nil)
		}
		return h.refuse(cl, pk, ReasonBudget, packets.ErrQuotaExceeded, err)
	}
	st, err := h.stream(stream)
	if err != nil {
		p.release()
		claim.Done(false)
		if errors.Is(err, errStopping) {
			return h.refuse(cl, pk, ReasonClosing, codeShuttingDown, nil)
		}
		return h.refuse(cl, pk, ReasonStorage, packets.ErrImplementationSpecificError, err)
	}
	out := outcome{st: st, claim: claim, deadKind: deadKind, rule: info.rule, resend: resend, qos: pk.FixedHeader.Qos, start: start}
	if h.deferAcks && out.qos <= 1 && !pk.FixedHeader.Retain && !h.subscribed.Load() {
		return h.deferPublish(cl, pk, p, out)
	}
	if out.qos > 0 && h.deferAcks {
		if a, ok := h.acks.Load(cl); ok {
			a.(*clientAcks).waitEmpty(h.ctx) // deferred PUBACKs go first
		}
	}
	if reason, code, logErr := h.settle(out, st.append(h, p, out.qos > 0), h.now()); reason != "" {
		return h.refuse(cl, pk, reason, code, logErr)
	}
	return nil
}

// outcome is what settling a publish needs (a struct, not a closure, so
// the read-loop path allocates nothing for it).
type outcome struct {
	st       *streamState
	claim    dedup.Claim
	deadKind string
	rule     string
	resend   resendKey
	qos      byte
	start    time.Time
}

// settle records the outcome of an append and says how to answer it.
// now is when the append was settled (a batch shares one clock reading).
func (h *Hook) settle(o outcome, err error, now time.Time) (reason string, code packets.Code, logErr error) {
	o.claim.Done(err == nil)
	if err != nil {
		if errors.Is(err, errStopping) {
			return ReasonClosing, codeShuttingDown, nil
		}
		if isDiskFull(err) {
			h.logDiskFull(err)
			return ReasonDiskFull, packets.ErrQuotaExceeded, nil
		}
		return ReasonStorage, packets.ErrImplementationSpecificError, err
	}
	o.st.appended.Inc()
	if o.resend.set {
		h.resends.add(o.resend)
	}
	if o.deadKind != "" {
		h.m.deadLetters.WithLabelValues(o.rule, o.deadKind).Inc()
	}
	h.m.appendSeconds[min(int(o.qos), 2)].Observe(now.Sub(o.start).Seconds())
	return "", packets.CodeSuccess, nil
}

// deferPublish queues a record without waiting for its write; mochi is
// told to send and forward nothing (no local subscriber exists). A
// QoS 1 record gets its PUBACK once it is durable (acks.go); a QoS 0 record
// needs none, so its publisher goes on reading while the partition's writer
// writes it in a larger batch (the queue is bounded: see maxDeferred).
func (h *Hook) deferPublish(cl *mqtt.Client, pk *packets.Packet, p *pendingRecord, out outcome) error {
	p.dp = deferredPublish{out: out, client: cl.ID, topic: pk.TopicName}
	if out.qos == 1 {
		acks := h.acksFor(cl)
		t, err := acks.reserve(h.ctx, pk.PacketID)
		if err != nil {
			p.release()
			_, _, _ = h.settle(out, err, h.now())
			return h.refuse(cl, pk, ReasonStorage, packets.ErrImplementationSpecificError, err)
		}
		p.dp.acks, p.dp.ticket, p.dp.v5 = acks, t, cl.Properties.ProtocolVersion == 5
	}
	p.deferred = &p.dp
	_ = out.st.append(h, p, out.qos > 0)
	if out.qos == 0 {
		// Ignore, not reject: mochi would log the rejection at debug
		// level, boxing the whole packet (an 800-byte allocation) first.
		return errIgnore
	}
	return errReject
}

// deferredPublish is what settling a deferred publish needs.
type deferredPublish struct {
	out    outcome
	acks   *clientAcks // nil for QoS 0
	ticket ackTicket
	v5     bool
	client string
	topic  string
}

// settle counts the outcome and, for QoS 1, marks the PUBACK ready (a
// failure code for MQTT 5, none for 3.1.1, whose client re-sends); the
// caller's flush writes it.
func (d *deferredPublish) settle(h *Hook, err error, flush *ackFlush, now time.Time) {
	reason, code, logErr := h.settle(d.out, err, now)
	if reason != "" {
		h.m.refused.WithLabelValues(reason).Inc()
		if logErr != nil && h.logDue(reason) {
			h.log.Warn("mqtt publish refused", "client", d.client, "topic", d.topic, "qos", d.out.qos, "reason", reason, "err", logErr)
		}
	}
	if d.acks != nil {
		d.acks.ready(d.ticket, reason == "" || d.v5, code, flush)
	}
}

// mochi's answers as error values made once: returning packets.Code values
// directly would box one on every publish.
var (
	errIgnore error = packets.CodeSuccessIgnore
	errReject error = packets.ErrRejectPacket
)

// PUBACK may carry only some reason codes (MQTT 5 section 3.4.2.1): 0x95
// packet too large and 0x8B shutting down are not among them, so those
// refusals use 0x83 implementation specific error with a reason string.
var (
	codePayloadTooLarge = packets.Code{Code: packets.ErrImplementationSpecificError.Code, Reason: "payload too large"}
	codeShuttingDown    = packets.Code{Code: packets.ErrImplementationSpecificError.Code, Reason: "server shutting down"}
)

// refuse counts and logs a refused publish and returns the error that makes
// mochi do the right thing: an MQTT 5 QoS 1 publish gets a PUBACK carrying
// code; everything else gets no acknowledgement at all (ErrRejectPacket), so
// the client keeps the message and resends it. (mochi answers a code with a
// PUBACK even for QoS 2, which a client would not match to its PUBREC wait,
// so QoS 2 is rejected silently too.) A refused publish is not forwarded to
// local subscribers either.
func (h *Hook) refuse(cl *mqtt.Client, pk *packets.Packet, reason string, code packets.Code, err error) error {
	h.m.refused.WithLabelValues(reason).Inc()
	if err != nil && h.logDue(reason) {
		h.log.Warn("mqtt publish refused", "client", cl.ID, "topic", pk.TopicName, "qos", pk.FixedHeader.Qos, "reason", reason, "err", err)
	}
	if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos == 1 {
		// The refusing PUBACK goes out when this returns, after the
		// deferred ones for earlier publishes (MQTT acknowledges QoS 1
		// publishes in the order they came).
		h.waitAcks(cl, pk)
		return code
	}
	return errReject
}

// pubInfo is what the hook needs of a mapped publish beyond its record.
type pubInfo struct {
	rule   string // rule name, for metrics
	device string // dedup key device (the record key)
	seq    uint64
	ts     int64
	seqDup bool // (seq, ts) identify re-sends
}

// record maps and validates a publish through the first matching rule,
// building the record in p.rec (p fresh from newPending). A payload that
// fails goes to the rule's dead-letter stream with a reason header instead;
// deadKind names the failure for the metric ("" for a good record).
func (h *Hook) record(cl *mqtt.Client, pk *packets.Packet, now time.Time, p *pendingRecord) (stream string, info pubInfo, deadKind string) {
	rec := &p.rec
	var (
		caps     rules.Captures
		reason   string
		key      string
		device   string
		dlq      string
		d        decoded
		origTime int64
		clamped  bool
	)
	rec.Timestamp = now.UnixMilli()
	r := h.rules.Match(pk.TopicName, &caps)
	info.rule = "none"
	if r == nil {
		deadKind, reason = DeadUnmapped, fmt.Sprintf("%v: %q matches no ingest rule (the default rule wants %d levels or more: stream, device, ...)",
			topicmap.ErrUnmapped, pk.TopicName, h.mapper.Levels()+1)
	} else {
		info.rule = r.Name
		stream = r.Stream(&caps)
		if err := topicmap.ValidStream(stream); err != nil {
			deadKind, reason = DeadUnmapped, fmt.Sprintf("%v: %q: %v", topicmap.ErrUnmapped, pk.TopicName, err)
		} else if !h.streamAllowed(stream) {
			deadKind, reason = DeadUnmapped, fmt.Sprintf("stream %q would exceed max_streams %d", stream, h.cfg.MaxStreams)
		}
		key, device = r.Key(&caps), r.Device(&caps)
		if device == "" {
			device = key
		}
		if dlq = r.DeadLetter(&caps); dlq != "" && topicmap.ValidStream(dlq) != nil {
			dlq = ""
		}
	}
	if deadKind != "" {
		stream, dlq, key, device = h.cfg.UnmappedStream, "", "", ""
	}
	ct := payload.Normalize(pk.Properties.ContentType)
	if ct == "" {
		ct = payload.Normalize(h.cfg.Streams[stream].ContentType)
	}
	if deadKind == "" {
		var err error
		switch {
		case r.Format == payload.FormatSparkplug:
			err = h.sparkplugDecode(&d, r, pk, rec)
		default:
			err = h.decodePayload(&d, r, ct, pk.Payload)
		}
		if err == nil && r.Schema != nil {
			if err = d.validate(r); err != nil {
				d.deadKind = DeadSchema
			}
		}
		switch {
		case err != nil:
			deadKind, reason = d.deadKind, err.Error()
			if deadKind == "" {
				deadKind = DeadInvalid
			}
		case d.reading && d.device != device:
			deadKind, reason = DeadDeviceMismatch, fmt.Sprintf("payload names device %q, topic names %q", d.device, device)
		default:
			ct = d.ct
			if d.hasTime && !r.ReceiveTime {
				ts := d.timeMs
				if r.MaxAge > 0 || r.MaxFuture > 0 {
					var out bool
					if ts, out = window(r, ts, now); out {
						origTime, clamped = d.timeMs, true
						h.m.timeReplaced.WithLabelValues(r.Name).Inc()
					}
				}
				rec.Timestamp = ts
			}
			info.seq, info.ts, info.seqDup = d.seq, d.timeMs, d.hasSeq && d.hasTime
		}
	}
	if key == "" {
		key = cl.ID
	}
	info.device = key
	// p's buffer holds the key, the topic and, when it differs from the
	// key, the device (the device header shares the key's bytes otherwise);
	// recordbatch.Build only reads them. Slices taken before an append that
	// moves the buffer keep the old bytes, which nothing writes again.
	buf := append(p.buf[:0], key...)
	buf = append(buf, pk.TopicName...)
	if device != key {
		buf = append(buf, device...)
	}
	p.buf = buf
	rec.Key = buf[:len(key):len(key)]
	topicBytes := buf[len(key) : len(key)+len(pk.TopicName) : len(key)+len(pk.TopicName)]
	deviceBytes := rec.Key
	if device != key {
		deviceBytes = buf[len(key)+len(pk.TopicName):]
	}
	if rec.Value == nil {
		rec.Value = pk.Payload
	}
	extra := len(rec.Headers)                // sparkplug headers, if any
	n := 4 + extra + len(pk.Properties.User) // + reason
	if r != nil {
		n += r.HeaderCount() + 2 // + value-kind, device-time
	}
	var hdrs []recordbatch.RecordHeader
	if n <= len(p.hdrs) {
		hdrs = p.hdrs[:3]
	} else {
		hdrs = make([]recordbatch.RecordHeader, 3, n)
	}
	hdrs[0] = recordbatch.RecordHeader{Key: HeaderContentType, Value: contentTypeBytes(ct)}
	hdrs[1] = recordbatch.RecordHeader{Key: HeaderMQTTTopic, Value: topicBytes}
	hdrs[2] = recordbatch.RecordHeader{Key: HeaderDevice, Value: deviceBytes}
	hdrs = append(hdrs, rec.Headers...)
	rec.Headers = hdrs
	if r != nil && r.HasHeaders() && deadKind != DeadUnmapped {
		r.Headers(&caps, func(k, v string) {
			rec.Headers = append(rec.Headers, recordbatch.RecordHeader{Key: k, Value: []byte(v)})
		})
	}
	if d.textKind != "" && deadKind == "" {
		rec.Headers = append(rec.Headers, recordbatch.RecordHeader{Key: HeaderValueKind, Value: valueKindBytes[d.textKind]})
	}
	if clamped {
		rec.Headers = append(rec.Headers, recordbatch.RecordHeader{Key: HeaderDeviceTime, Value: strconv.AppendInt(nil, origTime, 10)})
	}
	for _, u := range pk.Properties.User { // MQTT 5 user properties travel as Kafka headers
		rec.Headers = append(rec.Headers, recordbatch.RecordHeader{Key: u.Key, Value: []byte(u.Val)})
	}
	if reason != "" {
		if dlq == "" {
			dlq = stream + h.cfg.DeadLetterSuffix
		}
		stream = dlq
		rec.Value = pk.Payload
		rec.Headers = append(rec.Headers, recordbatch.RecordHeader{Key: HeaderReason, Value: []byte(reason)})
		if due(&h.lastDeadLetterLog, h.now()) { // counted per publish; logged at most every 10 s
			h.log.Info("publish dead-lettered", "client", cl.ID, "topic", pk.TopicName, "stream", stream, "rule", info.rule, "reason", reason)
		}
	}
	return stream, info, deadKind
}

// Header values of the content types the edge decodes, shared by every
// record (never written to).
var (
	ctCBOR        = []byte(payload.ContentCBOR)
	ctJSON        = []byte(payload.ContentJSON)
	ctSenMLCBOR   = []byte(payload.ContentSenMLCBOR)
	ctSenMLJSON   = []byte(payload.ContentSenMLJSON)
	ctOctetStream = []byte("application/octet-stream")
	ctText        = []byte(payload.ContentText)
	ctSparkplug   = []byte(payload.ContentSparkplug)
)

// valueKindBytes are the value-kind header values, shared.
var valueKindBytes = map[string][]byte{"number": []byte("number"), "bool": []byte("bool"), "text": []byte("text")}

func contentTypeBytes(ct string) []byte {
	switch ct {
	case payload.ContentCBOR:
		return ctCBOR
	case payload.ContentJSON:
		return ctJSON
	case payload.ContentSenMLCBOR:
		return ctSenMLCBOR
	case payload.ContentSenMLJSON:
		return ctSenMLJSON
	case payload.ContentText:
		return ctText
	case payload.ContentSparkplug:
		return ctSparkplug
	case "", payload.ContentRaw:
		return ctOctetStream
	}
	return []byte(ct)
}

// streamAllowed says whether stream exists or may still be created.
func (h *Hook) streamAllowed(stream string) bool {
	if _, ok := h.streams.Load(stream); ok {
		return true
	}
	if _, ok := h.topics.Get(stream); ok {
		return true
	}
	return len(h.topics.List()) < h.cfg.MaxStreams
}

// streamState is what the hot path needs of a stream: its partition
// writers and its appended counter (resolved once, not per publish).
type streamState struct {
	writers  []*partitionWriter
	appended prometheus.Counter
}

// append queues p on its key's partition (see partitionWriter.append).
func (s *streamState) append(h *Hook, p *pendingRecord, durable bool) error {
	return s.writers[topicmap.Partition(p.rec.Key, int32(len(s.writers)))].append(h, p, durable)
}

// stream returns a stream's state, creating the stream on first use.
func (h *Hook) stream(stream string) (*streamState, error) {
	if v, ok := h.streams.Load(stream); ok {
		return v.(*streamState), nil
	}
	h.createMu.Lock()
	defer h.createMu.Unlock()
	if v, ok := h.streams.Load(stream); ok {
		return v.(*streamState), nil
	}
	if h.closed.Load() {
		return nil, fmt.Errorf("create stream %s: %w", stream, errStopping)
	}
	info, ok := h.topics.Get(stream)
	if !ok {
		n := h.cfg.Streams[stream].Partitions
		if n <= 0 {
			n = h.cfg.DefaultPartitions
			if h.isDeadLetter(stream) {
				n = h.cfg.DeadLetterPartitions
			}
		}
		if err := h.topics.Create(stream, n, storage.LogConfig{}); err != nil && !errors.Is(err, storage.ErrTopicExists) {
			return nil, fmt.Errorf("create stream %s: %w", stream, err)
		}
		h.log.Info("stream created", "stream", stream, "partitions", n)
		if info, ok = h.topics.Get(stream); !ok {
			return nil, fmt.Errorf("stream %s missing after create", stream)
		}
	}
	logs := make([]*storage.Log, info.Partitions)
	for p := range logs {
		l, err := h.topics.Partition(stream, int32(p))
		if err != nil {
			return nil, fmt.Errorf("open %s-%d: %w", stream, p, err)
		}
		logs[p] = l
	}
	ws := make([]*partitionWriter, len(logs)) // started only once all opened: Drain stops what is in h.streams
	for p, l := range logs {
		ws[p] = h.startPartitionWriter(fmt.Sprintf("%s-%d", stream, p), l)
	}
	st := &streamState{writers: ws, appended: h.m.appended.WithLabelValues(stream)}
	h.streams.Store(stream, st)
	return st, nil
}

func (h *Hook) isDeadLetter(stream string) bool {
	s := h.cfg.DeadLetterSuffix
	return len(stream) > len(s) && stream[len(stream)-len(s):] == s
}

// logDue rate-limits the logs of refusals that repeat for every publish
// while the condition lasts (budget reached, a read-only partition); the
// metric still counts each one. ACL and size refusals are per client and
// always logged.
func (h *Hook) logDue(reason string) bool {
	switch reason {
	case ReasonBudget:
		return due(&h.lastBudgetLog, h.now())
	case ReasonStorage:
		return due(&h.lastStorageLog, h.now())
	}
	return true
}

func due(last *atomic.Int64, now time.Time) bool {
	n, l := now.UnixNano(), last.Load()
	return n-l >= int64(10*time.Second) && last.CompareAndSwap(l, n)
}

// Drain stops accepting publishes, waits for those being appended (their
// PUBACKs written) and stops the partition writers.
func (h *Hook) Drain() {
	h.closed.Store(true)
	h.gate.Lock() // a drop-oldest pass in progress ends
	//lint:ignore SA2001 taking the lock is the wait for the pass holding it
	h.gate.Unlock()
	h.createMu.Lock() // a stream being created is in h.streams once this returns
	//lint:ignore SA2001 taking the lock is the wait for the creation holding it
	h.createMu.Unlock()
	h.streams.Range(func(_, v any) bool {
		for _, w := range v.(*streamState).writers {
			w.stop()
		}
		return true
	})
	h.workers.Wait()
}

// Counts is a snapshot of the ingest counters (for tests and status output).
type Counts struct {
	Refused     map[string]float64 // by reason
	DeadLetters float64
	Dropped     float64
	Appended    float64
	Duplicates  float64 // re-sends acknowledged without storing
	// RetainedClears counts empty retained publishes (not stored).
	RetainedClears float64
	Connects       map[string]float64 // accepted, refused
}

// Counts reads the counters.
func (h *Hook) Counts() Counts {
	c := Counts{Refused: map[string]float64{}, Connects: map[string]float64{}}
	for _, r := range []string{ReasonACL, ReasonOversized, ReasonBudget, ReasonDiskFull, ReasonStorage, ReasonClosing} {
		c.Refused[r] = value(h.m.refused.WithLabelValues(r))
	}
	for _, r := range []string{"accepted", "refused"} {
		c.Connects[r] = value(h.m.connects.WithLabelValues(r))
	}
	c.DeadLetters = sumVec(h.m.deadLetters)
	c.Appended = sumVec(h.m.appended)
	c.Dropped = value(h.m.dropped)
	c.Duplicates = value(h.m.duplicates)
	c.RetainedClears = value(h.m.retainedClears)
	return c
}

func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil || m.Counter == nil {
		return 0
	}
	return m.Counter.GetValue()
}

func sumVec(v *prometheus.CounterVec) float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() { v.Collect(ch); close(ch) }()
	var sum float64
	for m := range ch {
		sum += value(m)
	}
	return sum
}
