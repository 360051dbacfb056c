package ingest

import (
	"errors"
	"fmt"
	"sort"
	"syscall"

	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// errOverBudget is returned when the budget is reached and nothing can go.
var errOverBudget = errors.New("disk budget reached")

// admit applies the disk budget before an append. The check and the append
// are not one atomic step, so concurrent publishers can overshoot the budget
// by at most one record each.
func (h *Hook) admit() error {
	budget := h.cfg.BudgetBytes
	if budget <= 0 || h.topics.TotalSize() < budget {
		return nil
	}
	if h.cfg.BudgetPolicy != PolicyDropOldest {
		return fmt.Errorf("%w: %d of %d bytes used", errOverBudget, h.topics.TotalSize(), budget)
	}
	h.gate.RLock() // Drain waits for a pass to end before the logs close
	defer h.gate.RUnlock()
	if h.closed.Load() {
		return fmt.Errorf("drop-oldest: %w", errStopping)
	}
	h.budgetMu.Lock()
	defer h.budgetMu.Unlock()
	for h.topics.TotalSize() >= budget {
		dropped, err := h.dropOldest()
		if err != nil {
			return err
		}
		if dropped == 0 {
			return fmt.Errorf("%w: nothing left to drop but active segments (%d of %d bytes)", errOverBudget, h.topics.TotalSize(), budget)
		}
	}
	return nil
}

// dropOldest deletes the oldest sealed segment among all partitions, judged
// by the first timestamp still held, and returns how many records went.
func (h *Hook) dropOldest() (int64, error) {
	type candidate struct {
		name string
		log  *storage.Log
		ts   int64
	}
	var cands []candidate
	for _, t := range h.topics.List() {
		for p := int32(0); p < t.Partitions; p++ {
			l, err := h.topics.Partition(t.Name, p)
			if err != nil {
				return 0, fmt.Errorf("drop-oldest: %w", err)
			}
			if l.StartOffset() >= l.NextOffset() {
				continue
			}
			b, err := l.Read(l.StartOffset(), 1, -1)
			if err != nil {
				return 0, fmt.Errorf("drop-oldest: read %s-%d: %w", t.Name, p, err)
			}
			hd, err := recordbatch.ParseHeader(b)
			if err != nil {
				return 0, fmt.Errorf("drop-oldest: %s-%d: %w", t.Name, p, err)
			}
			cands = append(cands, candidate{fmt.Sprintf("%s-%d", t.Name, p), l, hd.FirstTimestamp})
		}
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].ts < cands[j].ts })
	for _, c := range cands {
		d, err := c.log.DropOldestSegment()
		if err != nil {
			return 0, fmt.Errorf("drop-oldest %s: %w", c.name, err)
		}
		if d.Records > 0 {
			h.m.dropped.Add(float64(d.Records))
			h.log.Warn("disk budget: dropped oldest segment", "partition", c.name, "records", d.Records,
				"from_offset", d.From, "to_offset", d.To, "budget_bytes", h.cfg.BudgetBytes, "log_bytes", h.topics.TotalSize())
			return d.Records, nil
		}
	}
	return 0, nil
}

func isDiskFull(err error) bool {
	return errors.Is(err, storage.ErrDiskFull) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// logDiskFull logs a real disk-full at most every 10 s: every publish hits it
// until space is freed (the metric counts each one).
func (h *Hook) logDiskFull(err error) {
	if due(&h.lastDiskFullLog, h.now()) {
		h.log.Error("disk full: refusing publishes until space is freed", "err", err)
	}
}
