package server

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/storage/recordbatch"
)

// Produce is advertised from v0 because some librdkafka releases turn
// compression off when the minimum is above 0, but only v3+ (RecordBatch v2)
// is served; older versions get UNSUPPORTED_FOR_MESSAGE_FORMAT per
// partition. v12 is the last version that names topics.
func init() { register(0, 0, 12, (*Server).handleProduce) }

func (s *Server) handleProduce(ctx context.Context, c *call, kreq kmsg.Request) (kmsg.Response, error) {
	req := kreq.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	if req.TimeoutMillis > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMillis)*time.Millisecond)
		defer cancel()
	}
	// Partitions of one request are independent: with acks=all they are
	// appended concurrently so their fsync waits overlap (group commit),
	// instead of one fsync after another. Each partition appears once per
	// request, so per-partition order is unaffected.
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxConcurrentAppends)
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for ti, rt := range req.Topics {
		st := &resp.Topics[ti]
		*st = kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		for pi, rp := range rt.Partitions {
			sp := &st.Partitions[pi]
			*sp = kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = -1, -1, -1
			if req.Acks != -1 || len(rt.Partitions)+len(req.Topics) <= 2 {
				s.producePartition(ctx, req, rt.Topic, rp, sp)
				continue
			}
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				s.producePartition(ctx, req, rt.Topic, rp, sp)
			}()
		}
	}
	wg.Wait()
	for _, st := range resp.Topics {
		for _, sp := range st.Partitions {
			c.fail(sp.ErrorCode)
		}
	}
	if req.Acks == 0 {
		return nil, nil // acks=0: the client expects no response at all
	}
	return resp, nil
}

// maxConcurrentAppends bounds the appends one acks=all request runs at once.
const maxConcurrentAppends = 32

func (s *Server) producePartition(ctx context.Context, req *kmsg.ProduceRequest, topic string,
	rp kmsg.ProduceRequestTopicPartition, sp *kmsg.ProduceResponseTopicPartition) {
	setErr := func(code int16, msg string) {
		sp.ErrorCode = code
		if msg != "" {
			sp.ErrorMessage = strp(msg)
		}
		s.m.records.WithLabelValues("rejected").Inc()
	}
	switch {
	case req.Version < 3:
		setErr(kerr.UnsupportedForMessageFormat.Code, "produce v3+ (record batch v2) required")
		return
	case req.TransactionID != nil:
		setErr(kerr.TransactionalIDAuthorizationFailed.Code, "transactions are not supported")
		return
	case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
		setErr(kerr.InvalidRequiredAcks.Code, "")
		return
	case len(rp.Records) == 0:
		setErr(kerr.CorruptMessage.Code, "no record batch")
		return
	}
	// The first batch's producer id decides idempotence; the log checks
	// CRCs, counts and sequences of every batch.
	h, err := recordbatch.ParseHeader(rp.Records)
	if err != nil {
		setErr(kerr.CorruptMessage.Code, err.Error())
		return
	}
	if h.IsTransactional() || h.IsControl() {
		setErr(kerr.TransactionalIDAuthorizationFailed.Code, "transactional batches are not supported")
		return
	}
	p, err := s.partition(topic, rp.Partition, true)
	if err != nil {
		setErr(errorCode(err), "")
		return
	}
	res, err := p.Append(ctx, rp.Records, req.Acks, h.ProducerID >= 0)
	if err != nil {
		code := errorCode(err)
		if code == kerr.UnknownServerError.Code {
			s.logger.Error("produce append failed", "topic", topic, "partition", rp.Partition, "err", err)
		}
		setErr(code, err.Error())
		return
	}
	if res.Duplicate {
		s.m.records.WithLabelValues("duplicate").Inc()
	} else {
		s.m.records.WithLabelValues("appended").Inc()
	}
	sp.BaseOffset = res.BaseOffset
	sp.LogAppendTime = -1 // CreateTime topics: the client's timestamps stand
	sp.LogStartOffset = p.LogStartOffset()
}
