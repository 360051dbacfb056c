package ingest

import (
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// What mochi-mqtt v2.7.9 gets wrong against real clients, fixed from the
// hook (see edge/README.md, "MQTT conformance"):
//
//   - MQTT 3.1.1 has no receive maximum, yet mochi disconnects a 3.1.1
//     client whose unacknowledged QoS 2 publishes reach the server's
//     receive maximum: 3.1.1 sessions get the whole packet id space.
//   - CONNACK never carries the Maximum Packet Size mochi enforces, so an
//     MQTT 5 client cannot know the limit before it is cut off.
//   - Will messages bypass OnPublish: they are stored from OnWillSent, with
//     the MQTT 5 will content type, which mochi does not keep.

// SetMaxPacketSize is the packet limit mochi enforces, advertised in
// MQTT 5 CONNACKs (0: none).
func (h *Hook) SetMaxPacketSize(n uint32) { h.maxPacket = n }

// OnConnect remembers the content type of an MQTT 5 will until it is sent.
func (h *Hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if pk.Connect.WillFlag && pk.Connect.WillProperties.ContentType != "" {
		h.willTypes.Store(cl.ID, pk.Connect.WillProperties.ContentType)
	} else {
		h.willTypes.Delete(cl.ID)
	}
	return nil
}

// OnSessionEstablished lifts the receive quota of 3.1.1 sessions (the
// protocol has no receive maximum; the client's own window bounds it).
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if cl.Properties.ProtocolVersion < 5 {
		cl.State.Inflight.ResetReceiveQuota(65535)
	}
}

// OnPacketEncode advertises the Maximum Packet Size in MQTT 5 CONNACKs,
// and never lets a PUBACK carry mochi's "granted QoS 1" (0x01), which is
// not a PUBACK reason code.
func (h *Hook) OnPacketEncode(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	switch pk.FixedHeader.Type {
	case packets.Connack:
		if cl.Properties.ProtocolVersion == 5 && h.maxPacket > 0 && pk.ReasonCode == 0 {
			pk.Properties.MaximumPacketSize = h.maxPacket
		}
	case packets.Puback:
		if pk.ReasonCode == packets.CodeGrantedQos1.Code {
			pk.ReasonCode = packets.CodeSuccess.Code
		}
	}
	return pk
}

// OnWillSent stores a will message like any publish to its topic (mochi
// publishes wills to subscribers only). It runs in the disconnecting
// client's goroutine, so it waits for the append and its fsync.
func (h *Hook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	if v, ok := h.willTypes.LoadAndDelete(cl.ID); ok {
		pk.Properties.ContentType = v.(string)
	}
	if pk.FixedHeader.Retain && len(pk.Payload) == 0 {
		return
	}
	if h.closed.Load() {
		// The wills of clients the stopping server disconnects: counted,
		// as every publish refused while closing is.
		h.m.refused.WithLabelValues(ReasonClosing).Inc()
		return
	}
	if !cl.Net.Inline && !h.auth.MayPublish(string(cl.Properties.Username), h.publishDevice(pk.TopicName)) {
		h.m.refused.WithLabelValues(ReasonACL).Inc()
		h.log.Warn("will refused by ACL", "client", cl.ID, "topic", pk.TopicName)
		return
	}
	if len(pk.Payload) > h.cfg.MaxPayloadBytes {
		h.m.refused.WithLabelValues(ReasonOversized).Inc()
		return
	}
	start := h.now()
	p := newPending()
	stream, info, deadKind := h.record(cl, &pk, start, p)
	if err := h.admit(); err != nil {
		p.release()
		h.m.refused.WithLabelValues(ReasonBudget).Inc()
		h.log.Warn("will not stored", "client", cl.ID, "topic", pk.TopicName, "err", err)
		return
	}
	st, err := h.stream(stream)
	if err != nil {
		p.release()
		h.log.Warn("will not stored", "client", cl.ID, "topic", pk.TopicName, "err", err)
		return
	}
	out := outcome{st: st, deadKind: deadKind, rule: info.rule, qos: 1, start: start}
	if reason, _, logErr := h.settle(out, st.append(h, p, true), h.now()); reason != "" {
		h.m.refused.WithLabelValues(reason).Inc()
		h.log.Warn("will not stored", "client", cl.ID, "topic", pk.TopicName, "reason", reason, "err", logErr)
	}
}
