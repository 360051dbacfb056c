package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// AddOffsetsToTxn v0-v3: a consumer group joins the producer's transaction,
// so offsets committed with TxnOffsetCommit become visible with it.
func init() { register(25, 0, 3, (*Server).handleAddOffsetsToTxn) }

func (s *Server) handleAddOffsetsToTxn(ctx context.Context, c *call,
	req *kmsg.AddOffsetsToTxnRequest, resp *kmsg.AddOffsetsToTxnResponse) (kmsg.Response, error) {
	resp.ErrorCode = s.coordinateTxn(c, req.TransactionalID, req.Version, 2, func() int16 {
		return s.txns.Add(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, nil, []string{req.Group})
	})
	return resp, nil
}
