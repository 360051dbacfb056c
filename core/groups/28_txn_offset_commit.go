package groups

// CheckTxnCommit applies OffsetCommit's rules for who may commit to a
// TxnOffsetCommit that names its consumer (v3+, KIP-447): a member of an
// older generation — a zombie after a rebalance — is refused, so it cannot
// commit offsets for partitions that are someone else's now. The offsets
// themselves wait in the broker until the transaction commits; the group is
// marked as having offsets already (retention counts from here). A request
// without generation and member (older clients) is not checked, as in
// Kafka.
func (c *Coordinator) CheckTxnCommit(group string, generation int32, memberID string, instanceID *string) int16 {
	if generation < 0 && memberID == "" {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.checkCommit(group, generation, memberID, instanceID, true)
}
