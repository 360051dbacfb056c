package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// EndTxn v0-v4: commit or abort. The answer comes once the decision is
// saved and, normally, every marker is written. v5 (KIP-890 epoch bump per
// transaction) is not served.
func init() { register(26, 0, 4, (*Server).handleEndTxn) }

func (s *Server) handleEndTxn(ctx context.Context, c *call,
	req *kmsg.EndTxnRequest, resp *kmsg.EndTxnResponse) (kmsg.Response, error) {
	resp.ErrorCode = s.coordinateTxn(c, req.TransactionalID, req.Version, 2, func() int16 {
		return s.txns.EndTxn(ctx, req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit)
	})
	return resp, nil
}
