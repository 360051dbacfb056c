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
	switch {
	case err == nil:
		return 0
	case errors.Is(err, storage.ErrUnknownTopic), errors.Is(err, storage.ErrUnknownPartition), errors.Is(err, cluster.ErrUnknownTopic):
		return kerr.UnknownTopicOrPartition.Code
	case errors.Is(err, storage.ErrInvalidTopic), errors.Is(err, cluster.ErrInvalidTopic):
		return kerr.InvalidTopicException.Code
	case errors.Is(err, storage.ErrTopicExists), errors.Is(err, cluster.ErrTopicExists):
		return kerr.TopicAlreadyExists.Code
	case errors.Is(err, cluster.ErrInvalidReplicationFactor):
		return kerr.InvalidReplicationFactor.Code
	case errors.Is(err, cluster.ErrInvalidPartitions):
		return kerr.InvalidPartitions.Code
	case errors.Is(err, cluster.ErrNoLeader):
		return kerr.RequestTimedOut.Code
	case errors.Is(err, cluster.ErrClosed):
		return kerr.NotController.Code
	case errors.Is(err, storage.ErrCorrupt), errors.Is(err, recordbatch.ErrCorrupt), errors.Is(err, recordbatch.ErrShort):
		// A damaged stored batch is refused, never served (the range is
		// in the log's Damage and /healthz until a replica replaces it).

		return kerr.CorruptMessage.Code
	case errors.Is(err, storage.ErrBatchTooLarge):
		return kerr.MessageTooLarge.Code
	case errors.Is(err, storage.ErrInvalidTimestamp):
		return kerr.InvalidTimestamp.Code
	case errors.Is(err, storage.ErrOutOfOrderSequence):
		return kerr.OutOfOrderSequenceNumber.Code
	case errors.Is(err, storage.ErrInvalidProducerEpoch):
		return kerr.InvalidProducerEpoch.Code
	case errors.Is(err, storage.ErrOffsetOutOfRange):
		return kerr.OffsetOutOfRange.Code
	case errors.Is(err, storage.ErrReadOnly), errors.Is(err, storage.ErrDiskFull):
		return kerr.KafkaStorageError.Code
	case errors.Is(err, storage.ErrClosed), errors.Is(err, errNotLeader), errors.Is(err, storage.ErrNotHosted):
		// The log is closing (shutdown or topic deletion) or is another
		// broker's: clients retry elsewhere or later, as after a leader move.
		return kerr.NotLeaderForPartition.Code
	case errors.Is(err, errNotEnoughReplicas):
		return kerr.NotEnoughReplicas.Code
	case errors.Is(err, errNotEnoughAfterAppend):
		return kerr.NotEnoughReplicasAfterAppend.Code
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return kerr.RequestTimedOut.Code
	default:
		return kerr.UnknownServerError.Code
	}
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
