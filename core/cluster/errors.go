package cluster

import (
	"errors"
	"fmt"
)

// Errors returned by proposals. They survive forwarding to the Raft leader (they travel as codes),
// so callers can map them to Kafka error codes with errors.Is.
var (
	ErrTopicExists              = errors.New("topic already exists")
	ErrUnknownTopic             = errors.New("unknown topic or partition")
	ErrInvalidPartitions        = errors.New("invalid number of partitions")
	ErrInvalidReplicationFactor = errors.New("replication factor above the number of live brokers")
	ErrInvalidTopic             = errors.New("invalid topic name")
	// ErrStaleLeaderEpoch refuses an ISR change from a leader that is no longer the leader, or
	// whose view of the partition is out of date (Kafka's FENCED_LEADER_EPOCH / INVALID_UPDATE_VERSION).
	ErrStaleLeaderEpoch = errors.New("stale leader epoch or partition epoch")
	ErrInvalidISR       = errors.New("invalid ISR")
	ErrUnknownBroker    = errors.New("unknown broker")
	ErrBadCommand       = errors.New("bad metadata command")
	// ErrNoLeader means no Raft leader was reachable before the context ended.
	ErrNoLeader = errors.New("no raft leader")
	// ErrClosed is returned by a Node after Close.
	ErrClosed = errors.New("cluster node closed")
)

var errorCodes = map[string]error{
	"topic_exists":       ErrTopicExists,
	"unknown_topic":      ErrUnknownTopic,
	"invalid_partitions": ErrInvalidPartitions,
	"invalid_rf":         ErrInvalidReplicationFactor,
	"invalid_topic":      ErrInvalidTopic,
	"stale_leader_epoch": ErrStaleLeaderEpoch,
	"invalid_isr":        ErrInvalidISR,
	"unknown_broker":     ErrUnknownBroker,
	"bad_command":        ErrBadCommand,
	"no_leader":          ErrNoLeader,
	"closed":             ErrClosed,
}

// applyError is what the FSM returns for a refused command: a code other nodes can turn back into
// the sentinel, plus a human-readable message.
type applyError struct {
	Code string `json:"code"`
	Msg  string `json:"msg"`
}

func (e *applyError) Error() string { return e.Msg }

func (e *applyError) Unwrap() error { return errorCodes[e.Code] }

func refuse(code, format string, args ...any) *applyError {
	base := errorCodes[code]
	return &applyError{Code: code, Msg: fmt.Sprintf("%s: %s", base, fmt.Sprintf(format, args...))}
}
