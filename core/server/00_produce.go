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

func (s *Server) handleProduce(ctx context.Context, c *call,
	req *kmsg.ProduceRequest, resp *kmsg.ProduceResponse) (kmsg.Response, error) {
	if req.TimeoutMillis > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMillis)*time.Millisecond)
		defer cancel()
	}
	// Appends happen here, in request order on this connection. For acks=all
	// the wait for the covering fsync is left to c.finish, which the
	// connection runs off its request loop: the next pipelined request is
	// appended while this one waits, and responses still go out in order.
	var durable []durableWait
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		if err := s.ensureTopic(rt.Topic); err != nil {
			s.logger.Warn("produce auto-create failed", "topic", rt.Topic, "err", err)
		}
		st.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		for pi, rp := range rt.Partitions {
			sp := &st.Partitions[pi]
			*sp = newProducePartition(rp.Partition, 0)
			if p := s.producePartition(ctx, req, rt.Topic, rp, sp); p != nil && req.Acks == -1 {
				durable = append(durable, durableWait{p: p, ti: len(resp.Topics), pi: pi, upTo: p.EndOffset()})
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	record := func() {
		for _, st := range resp.Topics {
			for _, sp := range st.Partitions {
				c.fail(sp.ErrorCode)
			}
		}
	}
	if len(durable) == 0 {
		record()
	} else {
		c.finish = func() {
			s.waitDurable(resp, durable)
			record()
		}
	}
	if req.Acks == 0 {
		return nil, nil // acks=0: the client expects no response at all
	}
	return resp, nil
}

// newProducePartition is a partition's answer before anything is
// appended: no offsets (-1), code as its error.
func newProducePartition(partition int32, code int16) kmsg.ProduceResponseTopicPartition {
	sp := kmsg.NewProduceResponseTopicPartition()
	sp.Partition, sp.ErrorCode = partition, code
	sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = -1, -1, -1
	return sp
}

// durableWait is a partition appended by an acks=all request, and where its
// answer sits in the response.
type durableWait struct {
	p      *Partition
	ti, pi int
	upTo   int64 // the log end right after this request's append
}

// waitDurable waits until fsyncs cover every appended partition; the waits
// run side by side so one request costs one fsync round, not one per
// partition. A partition whose fsync failed is answered with an error: its
// records were written but are not promised.
func (s *Server) waitDurable(resp *kmsg.ProduceResponse, waits []durableWait) {
	if len(waits) == 1 {
		s.waitOne(resp, waits[0])
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxConcurrentSyncWaits)
	for _, w := range waits {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s.waitOne(resp, w)
		}()
	}
	wg.Wait()
}

func (s *Server) waitOne(resp *kmsg.ProduceResponse, w durableWait) {
	if err := w.p.WaitDurable(context.Background(), w.upTo); err != nil {
		sp := &resp.Topics[w.ti].Partitions[w.pi]
		sp.ErrorCode, sp.ErrorMessage = kerr.KafkaStorageError.Code, strp(err.Error())
		switch code := errorCode(err); code {
		case kerr.NotLeaderForPartition.Code, // closed under us or deposed: retry
			kerr.NotEnoughReplicasAfterAppend.Code, kerr.RequestTimedOut.Code: // replicas did not confirm: retry
			sp.ErrorCode = code
		}
		sp.BaseOffset = -1
		s.logger.Warn("produce: fsync wait failed", "topic", w.p.Topic, "partition", w.p.ID, "err", err)
	}
}

// maxConcurrentSyncWaits bounds the fsync waits one request runs at once.
const maxConcurrentSyncWaits = 32

// producePartition appends one partition's batches and fills in its answer;
// it returns the partition when the append succeeded.
func (s *Server) producePartition(ctx context.Context, req *kmsg.ProduceRequest, topic string,
	rp kmsg.ProduceRequestTopicPartition, sp *kmsg.ProduceResponseTopicPartition) *Partition {
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
		return nil
	case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
		setErr(kerr.InvalidRequiredAcks.Code, "")
		return nil
	case len(rp.Records) == 0:
		setErr(kerr.CorruptMessage.Code, "no record batch")
		return nil
	}
	// The first batch's producer id decides idempotence; the log checks
	// CRCs, counts and sequences of every batch.
	h, err := recordbatch.ParseHeader(rp.Records)
	if err != nil {
		setErr(kerr.CorruptMessage.Code, err.Error())
		return nil
	}
	if code, msg := s.checkTxnProduce(req.TransactionID, h, topic, rp.Partition); code != 0 { // transactions (txn.go)
		setErr(code, msg)
		return nil
	}
	p, err := s.partition(topic, rp.Partition)
	if err != nil {
		setErr(errorCode(err), "")
		return nil
	}
	if req.Acks == -1 {
		if err := p.CheckMinISR(); err != nil {
			setErr(errorCode(err), err.Error())
			return nil
		}
	}
	res, err := p.Append(ctx, rp.Records, h.ProducerID >= 0)
	if err != nil {
		code := errorCode(err)
		if code == kerr.UnknownServerError.Code {
			s.logger.Error("produce append failed", "topic", topic, "partition", rp.Partition, "err", err)
		}
		setErr(code, err.Error())
		return nil
	}
	if res.Duplicate {
		s.m.records.WithLabelValues("duplicate").Inc()
	} else {
		s.m.records.WithLabelValues("appended").Inc()
	}
	sp.BaseOffset = res.BaseOffset
	sp.LogAppendTime = -1 // CreateTime topics: the client's timestamps stand
	sp.LogStartOffset = p.LogStartOffset()
	return p
}
