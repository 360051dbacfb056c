package server

import (
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/internal/bufpool"
)

// handlerFunc serves one decoded request. A nil response means "send
// nothing" (Produce with acks=0); an error closes the connection.
type handlerFunc func(s *Server, ctx context.Context, c *call, req kmsg.Request) (kmsg.Response, error)

type handler struct {
	min, max int16
	fn       handlerFunc
}

// handlers is filled by the init functions of the per-API files.
var handlers = map[int16]handler{}

// register declares that key is served for versions [min, max] by fn,
// which gets the request as its own type and a fresh response to fill in
// (returning it, or nil for none). The maximum is clamped to what kmsg can
// encode. A handler written for another key's request panics here, at
// init, rather than at its first request.
func register[Req kmsg.Request, Resp kmsg.Response](key, min, max int16,
	fn func(s *Server, ctx context.Context, c *call, req Req, resp Resp) (kmsg.Response, error)) {
	if r := kmsg.RequestForKey(key); r != nil {
		var want Req
		var fills Resp
		if _, ok := r.(Req); !ok {
			panic(fmt.Sprintf("register: key %d decodes to %T, the handler takes %T", key, r, want))
		}
		if _, ok := r.ResponseKind().(Resp); !ok {
			panic(fmt.Sprintf("register: key %d answers %T, the handler fills %T", key, r.ResponseKind(), fills))
		}
		if r.MaxVersion() < max {
			max = r.MaxVersion()
		}
	}
	handlers[key] = handler{min: min, max: max, fn: func(s *Server, ctx context.Context, c *call, req kmsg.Request) (kmsg.Response, error) {
		return fn(s, ctx, c, req.(Req), req.ResponseKind().(Resp))
	}}
}

// call is one request in flight: its connection and the outcome reported to
// metrics.
type call struct {
	conn *clientConn
	code int16 // first error code a handler reported
	// finish, when a handler sets it, completes the response and may block
	// (waiting for an fsync); it runs before the response is encoded, off
	// the connection's request loop.
	finish func()
	// release, when a handler sets it, runs once the response is encoded:
	// it returns the pooled buffers the response's fields pointed into.
	release func()
}

// fail records an error code for metrics (the first non-zero one wins).
func (c *call) fail(code int16) {
	if c.code == 0 {
		c.code = code
	}
}

// versionRange is the range served for key, counting the group coordinator's.
func (s *Server) versionRange(key int16) (h handler, ok bool) {
	if h, ok := handlers[key]; ok {
		return h, true
	}
	if s.groups != nil {
		if v, ok := s.groups.Versions()[key]; ok {
			max := v[1]
			if r := kmsg.RequestForKey(key); r != nil && r.MaxVersion() < max {
				max = r.MaxVersion()
			}
			return handler{min: v[0], max: max, fn: (*Server).handleGroup}, true
		}
	}
	return handler{}, false
}

// apiVersions lists every served key, sorted, for ApiVersions.
func (s *Server) apiVersions() []kmsg.ApiVersionsResponseApiKey {
	keys := map[int16]struct{}{}
	for k := range handlers {
		keys[k] = struct{}{}
	}
	if s.groups != nil {
		for k := range s.groups.Versions() {
			keys[k] = struct{}{}
		}
	}
	var out []kmsg.ApiVersionsResponseApiKey
	for k := range keys {
		h, _ := s.versionRange(k)
		out = append(out, kmsg.ApiVersionsResponseApiKey{ApiKey: k, MinVersion: h.min, MaxVersion: h.max})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ApiKey < out[j].ApiKey })
	return out
}

// requestHeader is the common prefix of every request.
type requestHeader struct {
	key, version int16
	correlation  int32
	clientID     string
}

// handleFrame decodes one request frame, serves it and returns the encoded
// response frame (size prefix included), or nil when no response is due. An
// error wrapping errFrame means the client broke the protocol.
func (s *Server) handleFrame(ctx context.Context, cc *clientConn, f []byte) ([]byte, error) {
	done, _, err := s.prepareFrame(ctx, cc, f)
	if err != nil {
		return nil, err
	}
	return done(), nil
}

// prepareFrame serves a request up to the point where only waiting is left
// (an acks=all produce waiting for its fsync). done finishes it and returns
// the response frame; wait says done may block, so the connection can run
// it aside while it serves the next request.
func (s *Server) prepareFrame(ctx context.Context, cc *clientConn, f []byte) (done func() []byte, wait bool, err error) {
	if cc.needSASL && !cc.authed.Load() && cc.sasl.v0 && cc.sasl.mechanism != "" {
		done, err := s.rawSASLFrame(cc, f)
		return done, false, err
	}
	var h requestHeader
	if len(f) < 8 {
		return nil, false, fmt.Errorf("%w: %d byte frame", errFrame, len(f))
	}
	h.key = int16(binary.BigEndian.Uint16(f[0:]))
	h.version = int16(binary.BigEndian.Uint16(f[2:]))
	h.correlation = int32(binary.BigEndian.Uint32(f[4:]))
	body := f[8:]
	// The client id is a nullable int16-length string in every header version.
	if len(body) < 2 {
		return nil, false, fmt.Errorf("%w: no client id", errFrame)
	}
	idLen := int(int16(binary.BigEndian.Uint16(body)))
	body = body[2:]
	if idLen > 0 {
		if idLen > len(body) {
			return nil, false, fmt.Errorf("%w: client id length %d beyond frame", errFrame, idLen)
		}
		h.clientID = string(body[:idLen])
		body = body[idLen:]
	}
	cc.clientID = h.clientID
	name := kmsg.NameForKey(h.key)
	if name == "" {
		name = "Unknown"
	}

	if cc.needSASL && !cc.authed.Load() && !preAuthAllowed(h.key) {
		s.sec.m.authFailed.WithLabelValues("state").Inc()
		s.sec.logs.warn(s.logger, "sasl:state:"+cc.host, "closing connection: request before SASL authentication",
			"remote", cc.remote, "api", name)
		return nil, false, fmt.Errorf("%w: %s", errNotAuthenticated, name)
	}
	hd, ok := s.versionRange(h.key)
	if h.key == 18 && (!ok || h.version > hd.max) {
		// A client newer than us: answer v0 with the list so it retries
		// with a version we know (the "v3 fallback").
		resp := kmsg.NewPtrApiVersionsResponse()
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		resp.ApiKeys = s.versions
		s.m.requests.WithLabelValues(name, errName(resp.ErrorCode)).Inc()
		b := encodeResponse(h, resp, 0)
		return func() []byte { return b }, false, nil
	}
	req := kmsg.RequestForKey(h.key)
	if req == nil {
		s.m.requests.WithLabelValues(name, errName(kerr.UnsupportedVersion.Code)).Inc()
		return nil, false, fmt.Errorf("%w: unknown api key %d", errFrame, h.key)
	}
	if h.version < 0 || h.version > req.MaxVersion() {
		// We cannot even encode an answer at this version; Kafka closes too.
		s.m.requests.WithLabelValues(name, errName(kerr.UnsupportedVersion.Code)).Inc()
		return nil, false, fmt.Errorf("%w: %s v%d is beyond any known version", errFrame, name, h.version)
	}
	req.SetVersion(h.version)
	if req.IsFlexible() {
		rest, err := skipTags(body)
		if err != nil {
			return nil, false, fmt.Errorf("%w: %s v%d header tags: %v", errFrame, name, h.version, err)
		}
		body = rest
	}
	if err := req.ReadFrom(body); err != nil {
		return nil, false, fmt.Errorf("%w: decode %s v%d: %v", errFrame, name, h.version, err)
	}

	var resp kmsg.Response
	c := &call{conn: cc}
	start := time.Now()
	if !ok || h.version < hd.min || h.version > hd.max {
		resp = unsupportedResponse(req)
		if resp == nil {
			s.m.requests.WithLabelValues(name, errName(kerr.UnsupportedVersion.Code)).Inc()
			return nil, false, fmt.Errorf("%w: %s v%d unsupported (served: %v %d-%d)", errFrame, name, h.version, ok, hd.min, hd.max)
		}
		c.fail(kerr.UnsupportedVersion.Code)
	} else if deny, after := s.authorize(c, req); deny != nil {
		resp = deny
	} else {
		var err error
		resp, err = hd.fn(s, ctx, c, req)
		if err != nil {
			s.m.requests.WithLabelValues(name, errName(kerr.UnknownServerError.Code)).Inc()
			return nil, false, fmt.Errorf("%s v%d: %w", name, h.version, err)
		}
		if after != nil {
			if resp != nil || h.key == 0 {
				after(resp)
			}
		}
	}
	finish := func() []byte {
		if c.finish != nil {
			c.finish()
		}
		s.m.requests.WithLabelValues(name, errName(c.code)).Inc()
		s.m.latency.WithLabelValues(name).Observe(time.Since(start).Seconds())
		if c.release != nil {
			defer c.release()
		}
		if resp == nil {
			return nil
		}
		return encodeResponse(h, resp, h.version)
	}
	return finish, c.finish != nil, nil
}

// encodeResponse frames resp: size, correlation id, the flexible header's
// empty tag section (never for ApiVersions, whose response header clients
// parse before they know the version), then the body.
func encodeResponse(h requestHeader, resp kmsg.Response, version int16) []byte {
	resp.SetVersion(version)
	buf := frameBuf(responseSizeHint(resp))[:8]
	binary.BigEndian.PutUint32(buf[4:], uint32(h.correlation))
	if resp.IsFlexible() && resp.Key() != 18 {
		buf = append(buf, 0)
	}
	buf = resp.AppendTo(buf)
	binary.BigEndian.PutUint32(buf, uint32(len(buf)-4))
	return buf
}

// Large response frames (fetches) are encoded into pooled buffers: a fresh
// one is zeroed by the runtime before the batches are copied over it, which
// cost as much CPU as the copy. writeResponses returns a frame once it is
// written; nothing else holds one.

// frameBuf returns an empty buffer with room for n bytes.
func frameBuf(n int) []byte { return bufpool.Get(n) }

// recycleFrame offers a written frame's buffer for reuse.
func recycleFrame(b []byte) { bufpool.Put(b) }

// responseSizeHint sizes the encode buffer up front: a fetch response is
// mostly stored batch bytes, and growing the buffer while appending them
// copied every fetched byte about twice more.
func responseSizeHint(resp kmsg.Response) int {
	f, ok := resp.(*kmsg.FetchResponse)
	if !ok {
		return 256
	}
	n := 256
	for _, t := range f.Topics {
		n += len(t.Topic) + 32
		for _, p := range t.Partitions {
			n += len(p.RecordBatches) + 96
		}
	}
	return n
}

// unsupportedResponse builds the response to a request we do not serve at
// this version, with UNSUPPORTED_VERSION in its top-level error code. Nil
// when the response has no top-level error code (the connection is closed
// instead, as Kafka does).
func unsupportedResponse(req kmsg.Request) kmsg.Response {
	resp := withErrorCode(req, kerr.UnsupportedVersion.Code)
	// Some responses carry their top-level error code only from a later
	// version on: if setting it does not change the encoding, this version
	// cannot express the error.
	if string(resp.AppendTo(nil)) == string(withErrorCode(req, 0).AppendTo(nil)) {
		return nil
	}
	return resp
}

// skipTags skips a tagged-field section (count, then tag/size/bytes).
func skipTags(b []byte) ([]byte, error) {
	n, used := binary.Uvarint(b)
	if used <= 0 {
		return nil, fmt.Errorf("bad tag count")
	}
	b = b[used:]
	if n > uint64(len(b)) {
		return nil, fmt.Errorf("tag count %d beyond frame", n)
	}
	for i := uint64(0); i < n; i++ {
		_, used := binary.Uvarint(b)
		if used <= 0 {
			return nil, fmt.Errorf("bad tag key")
		}
		b = b[used:]
		sz, used := binary.Uvarint(b)
		if used <= 0 || sz > uint64(len(b)-used) {
			return nil, fmt.Errorf("bad tag size")
		}
		b = b[used+int(sz):]
	}
	return b, nil
}
