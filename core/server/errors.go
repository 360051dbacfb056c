package server

import (
	"context"
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/tributary-io/tributary/core/cluster"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// errorCode maps a storage or handler error to the Kafka error code clients
// understand; nil is 0.
func errorCode(err error) int16 {
	if err == nil {
		return 0
	}
	for _, ec := range errorCodes {
		for _, target := range ec.errs {
			if errors.Is(err, target) {
				return ec.code
			}
		}
	}
	return kerr.UnknownServerError.Code
}

// errorCodes are errorCode's answers, the first match winning.
var errorCodes = []struct {
	errs []error
	code int16
}{
	{[]error{storage.ErrUnknownTopic, storage.ErrUnknownPartition, cluster.ErrUnknownTopic}, kerr.UnknownTopicOrPartition.Code},
	{[]error{storage.ErrInvalidTopic, cluster.ErrInvalidTopic}, kerr.InvalidTopicException.Code},
	{[]error{storage.ErrTopicExists, cluster.ErrTopicExists}, kerr.TopicAlreadyExists.Code},
	{[]error{cluster.ErrInvalidReplicationFactor}, kerr.InvalidReplicationFactor.Code},
	{[]error{cluster.ErrInvalidPartitions}, kerr.InvalidPartitions.Code},
	{[]error{cluster.ErrNoLeader}, kerr.RequestTimedOut.Code},
	{[]error{cluster.ErrClosed}, kerr.NotController.Code},
	// A damaged stored batch is refused, never served (the range is in the
	// log's Damage and /healthz until a replica replaces it).
	{[]error{storage.ErrCorrupt, recordbatch.ErrCorrupt, recordbatch.ErrShort}, kerr.CorruptMessage.Code},
	{[]error{storage.ErrBatchTooLarge}, kerr.MessageTooLarge.Code},
	{[]error{storage.ErrInvalidTimestamp}, kerr.InvalidTimestamp.Code},
	{[]error{storage.ErrOutOfOrderSequence}, kerr.OutOfOrderSequenceNumber.Code},
	{[]error{storage.ErrInvalidProducerEpoch}, kerr.InvalidProducerEpoch.Code},
	{[]error{storage.ErrOffsetOutOfRange}, kerr.OffsetOutOfRange.Code},
	{[]error{storage.ErrReadOnly, storage.ErrDiskFull}, kerr.KafkaStorageError.Code},
	// The log is closing (shutdown or topic deletion) or is another
	// broker's: clients retry elsewhere or later, as after a leader move.
	{[]error{storage.ErrClosed, storage.ErrTruncated, errNotLeader, storage.ErrNotHosted}, kerr.NotLeaderForPartition.Code},
	{[]error{errNotEnoughReplicas}, kerr.NotEnoughReplicas.Code},
	{[]error{errNotEnoughAfterAppend}, kerr.NotEnoughReplicasAfterAppend.Code},
	{[]error{context.Canceled, context.DeadlineExceeded}, kerr.RequestTimedOut.Code},
}

// errName names an error code for metrics labels.
func errName(code int16) string {
	if code == 0 {
		return "none"
	}
	if e := kerr.ErrorForCode(code); e != nil {
		var ke *kerr.Error
		if errors.As(e, &ke) {
			return ke.Message
		}
	}
	return "UNKNOWN"
}

func strp(s string) *string { return &s }
