package cluster

import (
	"io"
	"sync"

	"github.com/hashicorp/raft"
)

// listFSM records applied commands; it exists to drive raft over RaftStore in tests.
type listFSM struct {
	mu  sync.Mutex
	cmd []string
}

func (f *listFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmd = append(f.cmd, string(l.Data))
	return nil
}

func (f *listFSM) get() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string{}, f.cmd...)
}

func (f *listFSM) Snapshot() (raft.FSMSnapshot, error) { return nil, errNoSnapshot }
func (f *listFSM) Restore(io.ReadCloser) error         { return errNoSnapshot }
