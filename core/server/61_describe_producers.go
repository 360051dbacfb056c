package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeProducers v0 (KIP-664): the idempotent producers a partition
// leader holds sequence state for. The edge bridge uses it to find the last
// edge sequence the core really has when the core refuses its next one (after
// the core lost a torn tail, say), so it can re-send from there instead of
// retrying the refused batch for ever.
func init() { register(61, 0, 0, (*Server).handleDescribeProducers) }

func (s *Server) handleDescribeProducers(_ context.Context, c *call,
	req *kmsg.DescribeProducersRequest, resp *kmsg.DescribeProducersResponse) (kmsg.Response, error) {
	for _, rt := range req.Topics {
		st := kmsg.NewDescribeProducersResponseTopic()
		st.Topic = rt.Topic
		for _, id := range rt.Partitions {
			sp := kmsg.NewDescribeProducersResponseTopicPartition()
			sp.Partition = id
			p, err := s.partition(rt.Topic, id)
			if err != nil {
				sp.ErrorCode = errorCode(err)
				c.fail(sp.ErrorCode)
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			open := p.log.OpenTxns() // transactions (txn.go): kafka-transactions.sh find-hanging
			for _, pi := range p.log.Producers() {
				ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
				ap.ProducerID = pi.ID
				ap.ProducerEpoch = int32(pi.Epoch)
				ap.LastSequence = pi.LastSequence
				ap.LastTimestamp = -1
				ap.CoordinatorEpoch = -1
				ap.CurrentTxnStartOffset = -1
				if first, ok := open[pi.ID]; ok {
					ap.CurrentTxnStartOffset = first
				}
				sp.ActiveProducers = append(sp.ActiveProducers, ap)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp, nil
}
