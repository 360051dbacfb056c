package bridge

import (
	"testing"

	"github.com/tributary-io/tributary/internal/testkit"
)

// Test helpers for the external test package (bridge_test), whose end-to-end
// tests import packages that may themselves import bridge (the edge gateway).
var (
	StartTestCore    = startCore
	TestBridgeConfig = testBridgeConfig
	JudgeCore        = judgeCore
	JudgeTopic       = judgeTopic
	RecordHeader     = header
)

// Stream is the stream the tests write.
const Stream = stream

// EdgeBinaryTest is how every test of the real edge binary begins: skipped
// under -short, run in parallel, the binary built, and a core (not yet
// started) on a free address for its bridge.
func EdgeBinaryTest(t *testing.T) (bin, coreAddr string, core *testCore) {
	if testing.Short() {
		t.Skip("builds and runs the edge binary")
	}
	t.Parallel()
	coreAddr = testkit.FreeAddr(t)
	return testkit.BuildBinary(t, "edge/cmd/tributary-edge"), coreAddr, newCore(t, coreAddr, "")
}

// Start and Records expose the test core.
func (c *testCore) Start()                     { c.start() }
func (c *testCore) Records(topic string) int64 { return c.records(topic) }

// Clean reports whether the verdict found no loss, duplicate, reordering or
// stray record.
func (v verdict) Clean() bool {
	return v.lost == 0 && v.duplicated == 0 && v.outOfOrder == 0 && v.unexpected == 0
}

// Records is how many records were consumed.
func (v verdict) Records() int { return v.records }

// Lost is how many expected readings the core does not hold.
func (v verdict) Lost() uint64 { return v.lost }

// CleanButLost reports a verdict with no duplicate, reordering or stray
// record (loss is judged by the caller).
func (v verdict) CleanButLost() bool {
	return v.duplicated == 0 && v.outOfOrder == 0 && v.unexpected == 0
}
