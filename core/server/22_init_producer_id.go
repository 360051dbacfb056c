package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// InitProducerId v0-v4. An idempotent producer gets a fresh producer id at
// epoch 0 from the persistent counter: ids are never reused, so a restarted
// producer can never be confused with its old self, and the per-partition
// sequence state lives in the logs (storage). A transactional producer gets
// its transactional id's producer id at a new epoch from the transaction
// coordinator, which fences older instances.
func init() { register(22, 0, 4, (*Server).handleInitProducerID) }

func (s *Server) handleInitProducerID(ctx context.Context, c *call,
	req *kmsg.InitProducerIDRequest, resp *kmsg.InitProducerIDResponse) (kmsg.Response, error) {
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil { // --- transactions (txn.go) ---
		resp.ErrorCode = s.coordinateTxn(c, *req.TransactionalID, req.Version, 4, func() int16 {
			r := s.txns.InitProducerID(ctx, *req.TransactionalID, req.TransactionTimeoutMillis, req.ProducerID, req.ProducerEpoch)
			resp.ProducerID, resp.ProducerEpoch = r.ProducerID, r.Epoch
			return r.Code
		})
		return resp, nil
	}
	id, err := s.newProducerID()
	if err != nil {
		s.logger.Error("allocate producer id", "err", err)
		resp.ErrorCode = kerr.KafkaStorageError.Code
		c.fail(resp.ErrorCode)
		return resp, nil
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp, nil
}

// clusterProducerID makes a broker's local counter value unique in the
// cluster: the broker id fills the low 16 bits (Validate bounds it), the
// counter the bits above, far below the bridge's forwarded-producer bit.
func clusterProducerID(local int64, broker int32) int64 {
	return local<<16 | int64(broker)
}
