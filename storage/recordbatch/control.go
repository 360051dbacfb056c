package recordbatch

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Control record types (the key's second int16): a transaction marker says
// whether the producer's transaction on this partition was aborted or
// committed.
const (
	ControlAbort  int16 = 0
	ControlCommit int16 = 1
)

// ErrNotControl is returned by ParseControl for a batch that is not a
// transaction marker.
var ErrNotControl = errors.New("recordbatch: not a control batch")

// BuildMarker encodes the control batch a transaction coordinator writes to
// every partition of a transaction when it ends: one record whose key is
// (version 0, type) and whose value is (version 0, coordinator epoch).
func BuildMarker(producerID int64, epoch int16, commit bool, coordinatorEpoch int32, ts int64) ([]byte, error) {
	typ := ControlAbort
	if commit {
		typ = ControlCommit
	}
	key := binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 0), uint16(typ))
	val := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint16(nil, 0), uint32(coordinatorEpoch))
	return Build([]Record{{Timestamp: ts, Key: key, Value: val}}, BuildOptions{
		ProducerID: producerID, ProducerEpoch: epoch, BaseSequence: -1, LeaderEpoch: -1,
		Attributes: TransactionalBit | ControlBit,
	})
}

// ParseControl reads the marker type of a control batch (ControlAbort or
// ControlCommit; other control types are reported as they are).
func ParseControl(batch []byte) (int16, error) {
	h, err := ParseHeader(batch)
	if err != nil {
		return 0, err
	}
	if !h.IsControl() {
		return 0, ErrNotControl
	}
	recs, err := Records(batch)
	if err != nil {
		return 0, fmt.Errorf("control batch: %w", err)
	}
	if len(recs) == 0 || len(recs[0].Key) < 4 {
		return 0, fmt.Errorf("control batch: %w: key too short", ErrCorrupt)
	}
	return int16(binary.BigEndian.Uint16(recs[0].Key[2:4])), nil
}
