package server

import (
	"context"
	"errors"

	"github.com/tributary-io/tributary/core/txns"
	"github.com/tributary-io/tributary/storage/meta"
)

var errTxnClusterTODO = errors.New("transactions in a cluster: not yet")

func (s *Server) replicateTxnState(ctx context.Context, id string, v []byte) error {
	return errTxnClusterTODO
}

func (s *Server) remoteMarker(ctx context.Context, tp txns.TopicPartition, pid int64, epoch int16, commit bool) error {
	return errTxnClusterTODO
}

func (s *Server) remoteGroupMarker(ctx context.Context, group string, pid int64, commit bool) error {
	return errTxnClusterTODO
}

func (s *Server) replicateOffsets(ctx context.Context, group string, offs map[meta.TopicPartition]meta.OffsetCommit) error {
	return errTxnClusterTODO
}
