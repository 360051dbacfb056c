package server

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// LastStableOffset is the offset below which every transaction on the
// partition is decided, never above the high watermark: read_committed
// consumers read up to here.
func (p *Partition) LastStableOffset() int64 {
	return p.log.LastStableOffset(p.HighWatermark())
}

// readCommitted serves a read_committed fetch: batches up to the LSO and
// the aborted transactions among them, which the client drops itself (it
// sees the abort markers too). Like Read, it reads into alloc's buffers and
// returns the high watermark.
func (p *Partition) readCommitted(alloc func(int) []byte, from int64, maxBytes int, sp *kmsg.FetchResponseTopicPartition) ([]byte, int64, error) {
	hw := p.HighWatermark()
	lso := p.log.LastStableOffset(hw)
	sp.LastStableOffset = lso
	b, err := p.log.ReadInto(alloc, from, maxBytes, lso)
	if err != nil {
		return nil, hw, fmt.Errorf("read %s/%d at %d: %w", p.Topic, p.ID, from, err)
	}
	if len(b) == 0 {
		return b, hw, nil
	}
	for _, a := range p.log.AbortedTxns(from, lso) {
		at := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
		at.ProducerID, at.FirstOffset = a.ProducerID, a.FirstOffset
		sp.AbortedTransactions = append(sp.AbortedTransactions, at)
	}
	return b, hw, nil
}
