// Package testkit holds test scaffolding that several roles' tests share, so
// a cluster is started one way with one set of timings: free ports, polling
// for conditions, and core brokers run as real processes.
package testkit
