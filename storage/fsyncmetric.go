package storage

import "github.com/prometheus/client_golang/prometheus"

// newFsyncHistogram is the histogram a Topics counts its logs' data fsyncs
// in (the ones durable appends wait on): a slow or failing disk, such as a
// worn SD card in a gateway, shows there first.
func newFsyncHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tributary_storage_fsync_seconds",
		Help:    "Time of each partition log data fsync (what a durable append waits for; metadata stores not included).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
}
