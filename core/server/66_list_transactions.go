package server

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/txns"
)

// ListTransactions v0-v1: the transactions this broker coordinates, by
// state, producer id and (v1) minimum running time.
func init() { register(66, 0, 1, (*Server).handleListTransactions) }

func (s *Server) handleListTransactions(_ context.Context, _ *call,
	req *kmsg.ListTransactionsRequest, resp *kmsg.ListTransactionsResponse) (kmsg.Response, error) {
	var states []txns.State
	for _, name := range req.StateFilters {
		st, ok := txns.ParseState(name)
		if !ok {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, name)
			continue
		}
		states = append(states, st)
	}
	if len(req.StateFilters) > 0 && len(states) == 0 {
		return resp, nil // only unknown states: nothing matches
	}
	now := time.Now().UnixMilli()
	for _, t := range s.txns.List(states, req.ProducerIDFilters) {
		if req.DurationFilterMillis >= 0 && req.Version >= 1 &&
			(t.State != txns.Ongoing || now-t.StartMs < req.DurationFilterMillis) {
			continue
		}
		if s.txnOwner(t.ID) != 0 {
			continue
		}
		st := kmsg.NewListTransactionsResponseTransactionState()
		st.TransactionalID, st.ProducerID, st.TransactionState = t.ID, t.ProducerID, t.State.String()
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp, nil
}
