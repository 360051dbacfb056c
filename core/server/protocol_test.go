package server

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"math/rand"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// rawConn speaks the protocol by hand so tests control every byte.
type rawConn struct {
	t    testing.TB
	nc   net.Conn
	br   *bufio.Reader
	corr int32
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// send writes req and returns its correlation id.
func (c *rawConn) send(req kmsg.Request) int32 {
	c.t.Helper()
	c.corr++
	b := kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw-test")).AppendRequest(nil, req, c.corr)
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write request: %v", err)
	}
	return c.corr
}

func (c *rawConn) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// recv reads one response frame into resp (whose version must be set).
func (c *rawConn) recv(wantCorr int32, resp kmsg.Response) {
	c.t.Helper()
	var sz [4]byte
	if _, err := io.ReadFull(c.br, sz[:]); err != nil {
		c.t.Fatalf("read response size: %v", err)
	}
	b := make([]byte, binary.BigEndian.Uint32(sz[:]))
	if _, err := io.ReadFull(c.br, b); err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	if corr := int32(binary.BigEndian.Uint32(b)); corr != wantCorr {
		c.t.Fatalf("correlation id %d, want %d", corr, wantCorr)
	}
	b = b[4:]
	if resp.IsFlexible() && resp.Key() != 18 {
		b = b[1:] // empty header tags
	}
	if err := resp.ReadFrom(b); err != nil {
		c.t.Fatalf("decode %T: %v", resp, err)
	}
}

// roundTrip sends req at its version and decodes the response.
func (c *rawConn) roundTrip(req kmsg.Request) kmsg.Response {
	c.t.Helper()
	corr := c.send(req)
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	c.recv(corr, resp)
	return resp
}

// expectClosed asserts the broker closes the connection.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := io.Copy(io.Discard, c.br)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("connection still open")
	}
}

func apiVersions(v int16) *kmsg.ApiVersionsRequest {
	r := kmsg.NewPtrApiVersionsRequest()
	r.Version = v
	r.ClientSoftwareName, r.ClientSoftwareVersion = "raw", "1"
	return r
}

func checkServing(t *testing.T, addr string) {
	t.Helper()
	c := dialRaw(t, addr)
	resp := c.roundTrip(apiVersions(3)).(*kmsg.ApiVersionsResponse)
	if resp.ErrorCode != 0 || len(resp.ApiKeys) == 0 {
		t.Fatalf("ApiVersions after bad input: error %d, %d keys", resp.ErrorCode, len(resp.ApiKeys))
	}
}

func sizePrefixed(body []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	return append(b, body...)
}

// TestBadInput sends malformed frames; each closes only its own connection.
func TestBadInput(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t.TempDir())
	cfg.MaxFrameBytes = 64 << 10
	srv := startServer(t, cfg)
	addr := srv.Addr()
	rng := rand.New(rand.NewSource(1))
	garbage := make([]byte, 300)
	rng.Read(garbage)

	header := func(key, version int16) []byte {
		b := binary.BigEndian.AppendUint16(nil, uint16(key))
		b = binary.BigEndian.AppendUint16(b, uint16(version))
		b = binary.BigEndian.AppendUint32(b, 7)
		return binary.BigEndian.AppendUint16(b, 0xffff) // null client id
	}
	cases := map[string][]byte{
		"random bytes":       garbage,
		"negative size":      {0x80, 0, 0, 0, 1, 2, 3, 4},
		"tiny frame":         sizePrefixed([]byte{0, 18, 0}),
		"oversized frame":    binary.BigEndian.AppendUint32(nil, 1<<20),
		"unknown api key":    sizePrefixed(header(9999, 0)),
		"version from space": sizePrefixed(header(3, 99)),
		"garbage body":       sizePrefixed(append(header(0, 9), garbage...)),
		"client id too long": sizePrefixed([]byte{0, 18, 0, 0, 0, 0, 0, 1, 0x7f, 0xff, 'a'}),
		"unserved old fetch": sizePrefixed(append(header(1, 3), garbage[:40]...)),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			c := dialRaw(t, addr)
			c.write(b)
			c.expectClosed()
			checkServing(t, addr)
		})
	}
	t.Run("truncated frame", func(t *testing.T) {
		c := dialRaw(t, addr)
		c.write(append(binary.BigEndian.AppendUint32(nil, 100), header(18, 0)...))
		_ = c.nc.(*net.TCPConn).CloseWrite()
		c.expectClosed()
		checkServing(t, addr)
	})
}

// TestVersionErrors checks the answers to versions we do not serve.
func TestVersionErrors(t *testing.T) {
	t.Parallel()
	srv := startServer(t, testConfig(t.TempDir()))
	c := dialRaw(t, srv.Addr())

	// ApiVersions from the future: a v0 answer with the error and our list.
	fut := apiVersions(3)
	fut.Version = 42
	// kmsg encodes v42 like v3, as a newer client's request would start.
	corr := c.send(fut)
	av := kmsg.NewPtrApiVersionsResponse()
	av.Version = 0
	c.recv(corr, av)
	if av.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("ApiVersions v42: error %d, want UNSUPPORTED_VERSION", av.ErrorCode)
	}
	byKey := map[int16]kmsg.ApiVersionsResponseApiKey{}
	for _, k := range av.ApiKeys {
		byKey[k.ApiKey] = k
	}
	for key, want := range map[int16][2]int16{0: {0, 12}, 1: {4, 12}, 3: {0, 12}, 18: {0, 3}, 22: {0, 4}, 23: {0, 4}} {
		if got := byKey[key]; got.MinVersion != want[0] || got.MaxVersion != want[1] {
			t.Errorf("key %d advertised %d-%d, want %d-%d", key, got.MinVersion, got.MaxVersion, want[0], want[1])
		}
	}

	// InitProducerId v5 exists but is not served: top-level error.
	ipid := kmsg.NewPtrInitProducerIDRequest()
	ipid.Version = 5
	if r := c.roundTrip(ipid).(*kmsg.InitProducerIDResponse); r.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("InitProducerId v5: error %d", r.ErrorCode)
	}

	// Produce v2 is advertised (librdkafka wants min 0) but refused per partition.
	prod := kmsg.NewPtrProduceRequest()
	prod.Version, prod.Acks = 2, 1
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "old"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = []byte{1, 2, 3}
	pt.Partitions = append(pt.Partitions, pp)
	prod.Topics = append(prod.Topics, pt)
	pr := c.roundTrip(prod).(*kmsg.ProduceResponse)
	if code := pr.Topics[0].Partitions[0].ErrorCode; code != kerr.UnsupportedForMessageFormat.Code {
		t.Fatalf("Produce v2: error %d", code)
	}
	// The connection still works after all of it.
	if r := c.roundTrip(apiVersions(3)).(*kmsg.ApiVersionsResponse); r.ErrorCode != 0 {
		t.Fatalf("ApiVersions v3 error %d", r.ErrorCode)
	}
}

// buildBatch makes one record batch, idempotent when pid >= 0.
func buildBatch(t testing.TB, n int, pid int64, seq int32, valueSize int) []byte {
	t.Helper()
	recs := make([]recordbatch.Record, n)
	for i := range recs {
		v := make([]byte, valueSize)
		for j := range v {
			v[j] = byte('a' + (i+j)%26)
		}
		recs[i] = recordbatch.Record{Timestamp: 1_700_000_000_000 + int64(i), Key: []byte("k"), Value: v}
	}
	opts := recordbatch.NoProducer
	if pid >= 0 {
		opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence = pid, 0, seq
	}
	b, err := recordbatch.Build(recs, opts)
	if err != nil {
		t.Fatalf("build batch: %v", err)
	}
	return b
}

func produceReq(acks int16, topic string, partition int32, batch []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version, req.Acks, req.TimeoutMillis = 9, acks, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Partition, rp.Records = partition, batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func produceOne(t *testing.T, c *rawConn, acks int16, topic string, partition int32, batch []byte) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	return c.roundTrip(produceReq(acks, topic, partition, batch)).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
}

// TestProduceErrors maps storage outcomes to Kafka error codes.
func TestProduceErrors(t *testing.T) {
	t.Parallel()
	srv := startServer(t, testConfig(t.TempDir()))
	c := dialRaw(t, srv.Addr())
	cl := newClient(t, srv.Addr())
	createTopic(t, cl, "small", 1, map[string]string{"max.message.bytes": "2048"})

	ok := produceOne(t, c, -1, "small", 0, buildBatch(t, 3, -1, -1, 10))
	if ok.ErrorCode != 0 || ok.BaseOffset != 0 {
		t.Fatalf("plain produce: error %d base %d", ok.ErrorCode, ok.BaseOffset)
	}
	// acks=all answers only once an fsync covers the batch.
	l, err := srv.Topics().Partition("small", 0)
	if err != nil {
		t.Fatal(err)
	}
	if synced := l.SyncedOffset(); synced < 3 {
		t.Fatalf("acks=all answered with the log synced only to %d, want >= 3", synced)
	}
	corrupt := buildBatch(t, 3, -1, -1, 10)
	corrupt[len(corrupt)-1] ^= 0xff
	if r := produceOne(t, c, 1, "small", 0, corrupt); r.ErrorCode != kerr.CorruptMessage.Code {
		t.Errorf("corrupt batch: error %d, want CORRUPT_MESSAGE", r.ErrorCode)
	}
	if r := produceOne(t, c, 1, "small", 0, buildBatch(t, 1, -1, -1, 4096)); r.ErrorCode != kerr.MessageTooLarge.Code {
		t.Errorf("large batch: error %d, want MESSAGE_TOO_LARGE", r.ErrorCode)
	}
	if r := produceOne(t, c, 1, "small", 7, buildBatch(t, 1, -1, -1, 10)); r.ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("unknown partition: error %d", r.ErrorCode)
	}

	// Idempotence: a retried batch is acknowledged with its first offsets; a
	// sequence gap is refused.
	ipid := c.roundTrip(kmsg.NewPtrInitProducerIDRequest()).(*kmsg.InitProducerIDResponse)
	if ipid.ErrorCode != 0 || ipid.ProducerID < 0 {
		t.Fatalf("InitProducerId: error %d id %d", ipid.ErrorCode, ipid.ProducerID)
	}
	first := buildBatch(t, 2, ipid.ProducerID, 0, 10)
	a := produceOne(t, c, -1, "small", 0, first)
	b := produceOne(t, c, -1, "small", 0, first)
	if a.ErrorCode != 0 || b.ErrorCode != 0 || a.BaseOffset != b.BaseOffset {
		t.Errorf("duplicate: first (%d, %d), retry (%d, %d); want same offset, no error", a.ErrorCode, a.BaseOffset, b.ErrorCode, b.BaseOffset)
	}
	if r := produceOne(t, c, -1, "small", 0, buildBatch(t, 1, ipid.ProducerID, 5, 10)); r.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Errorf("sequence gap: error %d, want OUT_OF_ORDER_SEQUENCE_NUMBER", r.ErrorCode)
	}
	next := produceOne(t, c, -1, "small", 0, buildBatch(t, 1, ipid.ProducerID, 2, 10))
	if next.ErrorCode != 0 || next.BaseOffset != a.BaseOffset+2 {
		t.Errorf("next in sequence: error %d base %d, want base %d", next.ErrorCode, next.BaseOffset, a.BaseOffset+2)
	}

	// acks=0 gets no response: the next response on the connection is the
	// next request's.
	c.send(produceReq(0, "small", 0, buildBatch(t, 4, -1, -1, 10)))
	lo := kmsg.NewPtrListOffsetsRequest()
	lo.Version = 4
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = "small"
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Timestamp = -1
	lt.Partitions = append(lt.Partitions, lp)
	lo.Topics = append(lo.Topics, lt)
	lr := c.roundTrip(lo).(*kmsg.ListOffsetsResponse)
	if got := lr.Topics[0].Partitions[0].Offset; got != next.BaseOffset+1+4 {
		t.Errorf("latest offset after acks=0 produce: %d, want %d", got, next.BaseOffset+1+4)
	}
}

// TestPipelining sends several requests in one write; responses come back
// in request order.
func TestPipelining(t *testing.T) {
	t.Parallel()
	srv := startServer(t, testConfig(t.TempDir()))
	c := dialRaw(t, srv.Addr())
	f := kmsg.NewRequestFormatter()
	var buf []byte
	var reqs []kmsg.Request
	for i := 0; i < 20; i++ {
		var r kmsg.Request
		switch i % 3 {
		case 0:
			r = apiVersions(3)
		case 1:
			m := kmsg.NewPtrMetadataRequest()
			m.Version = 9
			r = m
		default:
			// acks=all finishes aside (waiting for fsync) while later
			// requests are served; responses must still come in order.
			r = produceReq(-1, "pipe", 0, buildBatch(t, 1, -1, -1, 8))
		}
		reqs = append(reqs, r)
		// AppendRequest writes the size at dst[0], so frame each alone.
		buf = append(buf, f.AppendRequest(nil, r, int32(100+i))...)
	}
	c.write(buf)
	for i, r := range reqs {
		resp := r.ResponseKind()
		resp.SetVersion(r.GetVersion())
		c.recv(int32(100+i), resp)
		if p, ok := resp.(*kmsg.ProduceResponse); ok {
			if got, want := p.Topics[0].Partitions[0].BaseOffset, int64(i/3); got != want {
				t.Errorf("produce %d landed at %d, want %d", i, got, want)
			}
		}
	}
}

func TestFetchLongPoll(t *testing.T) {
	t.Parallel()
	srv := startServer(t, testConfig(t.TempDir()))
	c := dialRaw(t, srv.Addr())
	cl := newClient(t, srv.Addr())
	createTopic(t, cl, "poll", 1, nil)

	fetch := kmsg.NewPtrFetchRequest()
	fetch.Version, fetch.MaxWaitMillis, fetch.MinBytes, fetch.MaxBytes = 11, 20000, 1, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "poll"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	start := time.Now()
	corr := c.send(fetch)

	// Produce on another connection once the fetch is parked.
	time.Sleep(200 * time.Millisecond)
	p := dialRaw(t, srv.Addr())
	batch := buildBatch(t, 5, -1, -1, 10)
	if r := produceOne(t, p, 1, "poll", 0, batch); r.ErrorCode != 0 {
		t.Fatalf("produce: %d", r.ErrorCode)
	}
	resp := kmsg.NewPtrFetchResponse()
	resp.Version = 11
	c.recv(corr, resp)
	// The wait was 20 s; waking at the append is the point of the long poll.
	if waited := time.Since(start); waited > 15*time.Second {
		t.Errorf("fetch returned after %v: the append did not wake it", waited)
	}
	rp := resp.Topics[0].Partitions[0]
	if rp.ErrorCode != 0 || rp.HighWatermark != 5 || rp.LogStartOffset != 0 || resp.SessionID != 0 {
		t.Fatalf("fetch: error %d hw %d lso %d session %d", rp.ErrorCode, rp.HighWatermark, rp.LogStartOffset, resp.SessionID)
	}
	// Stored bytes are served as they were produced, apart from the base
	// offset and leader epoch, which the broker assigns outside the CRC.
	if len(rp.RecordBatches) != len(batch) || string(rp.RecordBatches[17:]) != string(batch[17:]) {
		t.Fatalf("fetched %d bytes, produced %d; contents differ", len(rp.RecordBatches), len(batch))
	}

	// Out of range.
	fetch.Topics[0].Partitions[0].FetchOffset = 99
	fetch.MaxWaitMillis = 0
	if r := c.roundTrip(fetch).(*kmsg.FetchResponse); r.Topics[0].Partitions[0].ErrorCode != kerr.OffsetOutOfRange.Code {
		t.Fatalf("fetch out of range: error %d", r.Topics[0].Partitions[0].ErrorCode)
	}
}

// TestAdmin covers topic creation with configs, DescribeConfigs,
// CreatePartitions, DeleteTopics, ListOffsets and OffsetForLeaderEpoch.
func TestAdmin(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t.TempDir())
	off := false
	cfg.AutoCreateTopics = &off
	srv := startServer(t, cfg)
	c := dialRaw(t, srv.Addr())
	cl := newClient(t, srv.Addr())
	ctx := testkit.Context(t, 30*time.Second)

	createTopic(t, cl, "cfg", 2, map[string]string{
		"retention.ms": "3600000", "cleanup.policy": "compact", "segment.bytes": "1048576", "retention.bytes": "-1",
	})
	info, ok := srv.Topics().Get("cfg")
	if !ok || info.Partitions != 2 || info.Config.RetentionAge != time.Hour || info.Config.Cleanup != "compact" ||
		info.Config.SegmentBytes != 1<<20 || info.Config.RetentionBytes > 0 {
		t.Fatalf("created topic: %+v", info)
	}
	dc := kmsg.NewPtrDescribeConfigsRequest()
	dr := kmsg.NewDescribeConfigsRequestResource()
	dr.ResourceType, dr.ResourceName = kmsg.ConfigResourceTypeTopic, "cfg"
	dc.Resources = append(dc.Resources, dr)
	dresp, err := dc.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range dresp.Resources[0].Configs {
		got[e.Name] = *e.Value
	}
	for k, v := range map[string]string{"retention.ms": "3600000", "cleanup.policy": "compact", "segment.bytes": "1048576", "retention.bytes": "-1"} {
		if got[k] != v {
			t.Errorf("DescribeConfigs %s = %q, want %q", k, got[k], v)
		}
	}

	// Broker-level configs show the defaults every topic starts from.
	bc := kmsg.NewPtrDescribeConfigsRequest()
	br := kmsg.NewDescribeConfigsRequestResource()
	br.ResourceType, br.ResourceName, br.ConfigNames = kmsg.ConfigResourceTypeBroker, "0", []string{"segment.bytes", "cleanup.policy"}
	bc.Resources = append(bc.Resources, br)
	bresp, err := bc.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if r := bresp.Resources[0]; r.ErrorCode != 0 || len(r.Configs) != 2 || *r.Configs[0].Value != "1048576" || *r.Configs[1].Value != "delete" {
		t.Errorf("broker configs: %+v", r)
	}

	// ValidateOnly checks without creating.
	vo := kmsg.NewPtrCreateTopicsRequest()
	vo.ValidateOnly = true
	vo.Topics = []kmsg.CreateTopicsRequestTopic{{Topic: "dry", NumPartitions: 2, ReplicationFactor: -1}}
	if r, err := vo.RequestWith(ctx, cl); err != nil || r.Topics[0].ErrorCode != 0 {
		t.Fatalf("validate-only create: %v %+v", err, r)
	}
	if _, ok := srv.Topics().Get("dry"); ok {
		t.Errorf("validate-only create made the topic")
	}

	// Bad configs and names are refused.
	for name, topic := range map[string]kmsg.CreateTopicsRequestTopic{
		"unknown config": {Topic: "x1", NumPartitions: 1, ReplicationFactor: 1, Configs: []kmsg.CreateTopicsRequestTopicConfig{{Name: "no.such", Value: kmsg.StringPtr("1")}}},
		"bad value":      {Topic: "x2", NumPartitions: 1, ReplicationFactor: 1, Configs: []kmsg.CreateTopicsRequestTopicConfig{{Name: "retention.ms", Value: kmsg.StringPtr("soon")}}},
		"bad name":       {Topic: "a/b", NumPartitions: 1, ReplicationFactor: 1},
		"replicas":       {Topic: "x3", NumPartitions: 1, ReplicationFactor: 3},
		"exists":         {Topic: "cfg", NumPartitions: 1, ReplicationFactor: 1},
	} {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.Topics = append(req.Topics, topic)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Topics[0].ErrorCode == 0 {
			t.Errorf("%s: created", name)
		}
	}

	cp := kmsg.NewPtrCreatePartitionsRequest()
	cpt := kmsg.NewCreatePartitionsRequestTopic()
	cpt.Topic, cpt.Count = "cfg", 5
	cp.Topics = append(cp.Topics, cpt)
	if resp, err := cp.RequestWith(ctx, cl); err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create partitions: %v %+v", err, resp)
	}
	if info, _ := srv.Topics().Get("cfg"); info.Partitions != 5 {
		t.Fatalf("partitions after grow: %d", info.Partitions)
	}

	// Offsets: two batches, the second later in time.
	for i, ts := range []int64{1000, 5000} {
		recs := []recordbatch.Record{{Timestamp: ts, Key: []byte("k"), Value: []byte("v")}, {Timestamp: ts + 1, Key: []byte("k"), Value: []byte("v")}}
		b, err := recordbatch.Build(recs, recordbatch.NoProducer)
		if err != nil {
			t.Fatal(err)
		}
		if r := produceOne(t, c, 1, "cfg", 1, b); r.ErrorCode != 0 || r.BaseOffset != int64(2*i) {
			t.Fatalf("produce %d: error %d base %d", i, r.ErrorCode, r.BaseOffset)
		}
	}
	for ts, want := range map[int64]int64{-2: 0, -1: 4, 0: 0, 3000: 2, 5001: 3, 9999: -1} {
		for _, v := range []int16{0, 1, 7} {
			lo := kmsg.NewPtrListOffsetsRequest()
			lo.Version = v
			lt := kmsg.NewListOffsetsRequestTopic()
			lt.Topic = "cfg"
			lp := kmsg.NewListOffsetsRequestTopicPartition()
			lp.Partition, lp.Timestamp = 1, ts
			lt.Partitions = append(lt.Partitions, lp)
			lo.Topics = append(lo.Topics, lt)
			p := c.roundTrip(lo).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
			gotOff := p.Offset
			if v == 0 {
				gotOff = -1
				if len(p.OldStyleOffsets) == 1 {
					gotOff = p.OldStyleOffsets[0]
				}
			}
			if p.ErrorCode != 0 || gotOff != want {
				t.Errorf("ListOffsets v%d ts %d: error %d offset %d, want %d", v, ts, p.ErrorCode, gotOff, want)
			}
		}
	}
	ofe := kmsg.NewPtrOffsetForLeaderEpochRequest()
	ofe.Version = 3
	ot := kmsg.NewOffsetForLeaderEpochRequestTopic()
	ot.Topic = "cfg"
	op := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	op.Partition, op.LeaderEpoch, op.CurrentLeaderEpoch = 1, 0, 0
	ot.Partitions = append(ot.Partitions, op)
	ofe.Topics = append(ofe.Topics, ot)
	if p := c.roundTrip(ofe).(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]; p.ErrorCode != 0 || p.EndOffset != 4 || p.LeaderEpoch != 0 {
		t.Errorf("OffsetForLeaderEpoch: %+v", p)
	}

	// Auto-create is off: metadata reports unknown topics.
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 9
	md.AllowAutoTopicCreation = true
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr("nope")}}
	if r := c.roundTrip(md).(*kmsg.MetadataResponse); r.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("metadata for unknown topic with auto-create off: error %d", r.Topics[0].ErrorCode)
	}

	del := kmsg.NewPtrDeleteTopicsRequest()
	del.Version = 4
	del.TopicNames = []string{"cfg", "nope"}
	dresp2 := c.roundTrip(del).(*kmsg.DeleteTopicsResponse)
	if dresp2.Topics[0].ErrorCode != 0 || dresp2.Topics[1].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("delete topics: %d, %d", dresp2.Topics[0].ErrorCode, dresp2.Topics[1].ErrorCode)
	}
	if _, ok := srv.Topics().Get("cfg"); ok {
		t.Errorf("topic still there after delete")
	}
}

// TestAdvertisedAddress: Metadata and FindCoordinator hand out the
// configured address, not the listener's.
func TestAdvertisedAddress(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t.TempDir())
	cfg.AdvertisedAddr = "broker.example:19092"
	cfg.NodeID = 7
	srv := startServer(t, cfg)
	c := dialRaw(t, srv.Addr())
	md := kmsg.NewPtrMetadataRequest()
	md.Version = 7
	mr := c.roundTrip(md).(*kmsg.MetadataResponse)
	if len(mr.Brokers) != 1 || mr.Brokers[0].Host != "broker.example" || mr.Brokers[0].Port != 19092 || mr.Brokers[0].NodeID != 7 || mr.ControllerID != 7 {
		t.Fatalf("metadata brokers %+v controller %d", mr.Brokers, mr.ControllerID)
	}
	for _, v := range []int16{2, 4} {
		fc := kmsg.NewPtrFindCoordinatorRequest()
		fc.Version, fc.CoordinatorKey, fc.CoordinatorKeys = v, "g", []string{"g"}
		fr := c.roundTrip(fc).(*kmsg.FindCoordinatorResponse)
		host, port, node, code := fr.Host, fr.Port, fr.NodeID, fr.ErrorCode
		if v >= 4 {
			co := fr.Coordinators[0]
			host, port, node, code = co.Host, co.Port, co.NodeID, co.ErrorCode
		}
		if code != 0 || host != "broker.example" || port != 19092 || node != 7 {
			t.Errorf("FindCoordinator v%d: %s:%d node %d error %d", v, host, port, node, code)
		}
	}
}
