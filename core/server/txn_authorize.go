package server

import "github.com/twmb/franz-go/pkg/kmsg"

// authorizeTxn applies Kafka's ACL rules to the transaction APIs: WRITE on
// the transactional id for the producer's requests (plus WRITE on each
// topic it adds, READ on a group whose offsets it commits), DESCRIBE on it
// for DescribeTransactions, CLUSTER_ACTION for the brokers' own
// WriteTxnMarkers. ListTransactions lists only what may be described.
func (s *Server) authorizeTxn(c *call, req kmsg.Request) (kmsg.Response, func(kmsg.Response)) {
	// Bringing a group's offsets into a transaction also needs READ on it.
	txnAndGroup := func(id, group string) kmsg.Response {
		if deny := s.deny(c, req, opWrite, rtTxnID, id); deny != nil {
			return deny
		}
		return s.deny(c, req, opRead, rtGroup, group)
	}
	switch r := req.(type) {
	case *kmsg.AddPartitionsToTxnRequest:
		if deny := s.deny(c, req, opWrite, rtTxnID, r.TransactionalID); deny != nil {
			return deny, nil
		}
		for _, t := range r.Topics {
			if !s.allowed(c, opWrite, rtTopic, t.Topic) {
				// All or nothing: a transaction must not start half-added.
				resp := r.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
				resp.SetVersion(r.Version)
				fillAddPartitions(r, resp, codeTopicDenied)
				c.fail(codeTopicDenied)
				return resp, nil
			}
		}
	case *kmsg.AddOffsetsToTxnRequest:
		return txnAndGroup(r.TransactionalID, r.Group), nil
	case *kmsg.EndTxnRequest:
		return s.deny(c, req, opWrite, rtTxnID, r.TransactionalID), nil
	case *kmsg.TxnOffsetCommitRequest:
		return txnAndGroup(r.TransactionalID, r.Group), nil
	case *kmsg.DescribeTransactionsRequest:
		return nil, refuse(c, &r.TransactionalIDs,
			func(id string) int16 { return s.authzCode(c, opDescribe, rtTxnID, id) },
			func(dr *kmsg.DescribeTransactionsResponse, id string, code int16) {
				st := kmsg.NewDescribeTransactionsResponseTransactionState()
				st.TransactionalID, st.ErrorCode = id, code
				dr.TransactionStates = append(dr.TransactionStates, st)
			})
	case *kmsg.ListTransactionsRequest:
		return nil, func(resp kmsg.Response) {
			lr := resp.(*kmsg.ListTransactionsResponse)
			lr.TransactionStates, _ = splitBy(lr.TransactionStates, func(st kmsg.ListTransactionsResponseTransactionState) bool {
				return s.may(c, opDescribe, rtTxnID, st.TransactionalID)
			})
		}
	case *kmsg.WriteTxnMarkersRequest:
		return s.deny(c, req, opClusterAction, rtCluster, clusterName), nil
	}
	return nil, nil
}
