package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/txns"
)

// DescribeTransactions v0: the state of transactional ids this broker
// coordinates (kafka-transactions.sh describe, kadm).
func init() { register(65, 0, 0, (*Server).handleDescribeTransactions) }

func (s *Server) handleDescribeTransactions(_ context.Context, c *call,
	req *kmsg.DescribeTransactionsRequest, resp *kmsg.DescribeTransactionsResponse) (kmsg.Response, error) {
	for _, id := range req.TransactionalIDs {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID, st.ProducerID, st.ProducerEpoch, st.StartTimestamp = id, -1, -1, -1
		st.ErrorCode = s.txnOwner(id)
		t, ok := s.txns.Describe(id)
		switch {
		case st.ErrorCode != 0:
		case !ok:
			st.ErrorCode = kerr.TransactionalIDNotFound.Code
		default:
			st.State, st.TimeoutMillis, st.ProducerID, st.ProducerEpoch = t.State.String(), t.TimeoutMs, t.ProducerID, t.Epoch
			if t.State == txns.Ongoing {
				st.StartTimestamp = t.StartMs
			}
			topics, parts := byTopic(t.Partitions)
			for _, topic := range topics {
				rt := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
				rt.Topic, rt.Partitions = topic, parts[topic]
				st.Topics = append(st.Topics, rt)
			}
		}
		c.fail(st.ErrorCode)
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp, nil
}
