package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/hashicorp/raft"
)

// Local is a cluster of one: the broker is the only broker, the only voter and the controller.
// Commands go through the same FSM a Raft group applies, synchronously and in process, and the
// state is saved after each one, so a single broker places partitions, elects leaders, keeps
// topic ids and refuses bad requests exactly as a cluster member does. It needs no ports.
type Local struct {
	proposals

	self   Broker
	save   func(state []byte) error
	logger *slog.Logger

	mu     sync.Mutex // one command at a time, like Raft's apply loop
	closed bool
}

// NewLocal starts a cluster of one from saved (the bytes last passed to save; nil for a new
// broker) and registers cfg.BrokerID at cfg.KafkaAddr. save must persist durably before it
// returns: a command counts as committed once it has.
func NewLocal(cfg Config, saved []byte, save func(state []byte) error, logger *slog.Logger) (*Local, error) {
	cfg = cfg.WithDefaults()
	if cfg.BrokerID < 0 {
		return nil, fmt.Errorf("local cluster: broker id %d is negative", cfg.BrokerID)
	}
	if logger == nil {
		logger = slog.Default()
	}
	fsm := NewFSM(logger.With("component", "metadata"))
	if saved != nil {
		if err := fsm.Restore(io.NopCloser(bytes.NewReader(saved))); err != nil {
			return nil, fmt.Errorf("local cluster: %w", err)
		}
	}
	l := &Local{self: Broker{ID: cfg.BrokerID, KafkaAddr: cfg.KafkaAddr}, save: save, logger: logger}
	l.proposals = proposals{cfg: cfg, fsm: fsm, propose: l.apply}
	// Registering (again, after a restart) records this run's address.
	if _, err := l.apply(context.Background(), command{Op: opRegisterBroker, Broker: &l.self}); err != nil {
		return nil, fmt.Errorf("local cluster: register broker %d: %w", cfg.BrokerID, err)
	}
	return l, nil
}

// apply commits one command: the FSM applies it at the next index and the new state is saved.
func (l *Local) apply(_ context.Context, c command) (applyResult, error) {
	data, err := encodeCommand(c)
	if err != nil {
		return applyResult{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return applyResult{}, ErrClosed
	}
	res, _ := l.fsm.Apply(&raft.Log{Index: l.fsm.AppliedIndex() + 1, Data: data}).(applyResult)
	if res.Err != nil {
		return res, res.Err
	}
	state, err := json.Marshal(snapshotFile{V: snapshotVersion, State: l.fsm.Metadata()})
	if err != nil {
		return applyResult{}, fmt.Errorf("apply %s: encode state: %w", c.Op, err)
	}
	if err := l.save(state); err != nil {
		return applyResult{}, fmt.Errorf("apply %s: save state: %w", c.Op, err)
	}
	return res, nil
}

// AdoptTopic enters a topic that exists on disk but not yet in the metadata (a data directory
// from before the single broker kept cluster metadata), keeping the id it already had.
func (l *Local) AdoptTopic(name, id string, partitions int32, config map[string]string) error {
	_, err := l.apply(context.Background(), command{Op: opCreateTopic, Topic: name, TopicID: id,
		Partitions: partitions, RF: 1, Config: config})
	if err != nil {
		return fmt.Errorf("adopt topic %s: %w", name, err)
	}
	return nil
}

// ID is this broker's id.
func (l *Local) ID() int32 { return l.self.ID }

// MetadataCurrent is always true: there is no other copy to catch up with.
func (l *Local) MetadataCurrent() bool { return true }

// Controller is this broker.
func (l *Local) Controller() (int32, bool) { return l.self.ID, true }

// Leave is Close: there is no one to hand leadership to.
func (l *Local) Leave(context.Context) error { return l.Close() }

// Close refuses further commands.
func (l *Local) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	return nil
}
