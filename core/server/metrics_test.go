package server

import "testing"

// TestFsyncHistogram: the broker's metrics carry the partition logs'
// fsyncs (storage's tributary_storage_fsync_seconds), and an acks=all
// produce on a lone broker, which waits for its fsync, is counted.
func TestFsyncHistogram(t *testing.T) {
	t.Parallel()
	srv, cl := startWithTopics(t, 1, "synced")
	const produces = 3
	for range produces {
		produceRecords(t, cl, "synced", 2)
	}
	mfs, err := srv.m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "tributary_storage_fsync_seconds" {
			if n := mf.GetMetric()[0].GetHistogram().GetSampleCount(); n < produces {
				t.Fatalf("%d fsyncs counted after %d acks=all produces", n, produces)
			}
			return
		}
	}
	t.Fatal("no tributary_storage_fsync_seconds in the broker's metrics")
}
