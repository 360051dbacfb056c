// Package cluster owns the core's cluster metadata: Serf membership, a Raft group and the metadata
// state machine that places partitions and tracks their leaders, leader epochs and ISRs.
//
// The pieces, smallest first:
//
//   - RaftStore: raft's LogStore and StableStore in one bbolt file.
//   - FSM: the replicated metadata (brokers, topics, partition assignment, leader, leader epoch,
//     ISR). Commands are versioned JSON; Apply is deterministic, so every replica places partitions
//     and elects leaders identically. Leaders are elected only from the ISR unless a topic sets
//     unclean.leader.election.enable=true.
//   - Node: one broker's membership. Serf tags carry the broker id and its Kafka, Raft and RPC
//     addresses; the Raft leader (the controller) turns Serf's view into broker registrations,
//     Raft voters (up to MaxVoters, the rest non-voters) and, on failure, leader moves.
//
// Proposals may be made on any node. A non-leader forwards them to the controller over a small
// HTTP/JSON RPC (RPCAddr) rather than returning NOT_CONTROLLER, because the broker's callers
// (CreateTopics, ISR changes from partition leaders) would otherwise all need the same retry loop;
// the call returns once the local copy has applied the result, so callers read their own writes.
package cluster
