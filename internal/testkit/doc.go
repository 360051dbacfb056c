// Package testkit holds the test scaffolding every role's tests share, so
// things are done one way with one set of timings: Logger (warnings to the
// test log, debug with -v), FreePort/FreeAddr (one process-wide set of
// loopback ports, safe for parallel tests), Eventually and Poll (poll a
// condition, never sleep for it), Context (a test's bound on its requests),
// Run (own a component's goroutine, stop it within a bound), CloseAtEnd
// (close what a test opened, failing it if that fails), BuildBinary and
// StartCoreCluster (core brokers as real processes, with CreateClusterTopic
// and PartitionStates), Get, GetJSON and Metrics (a role's HTTP endpoints),
// NewCA and ServerCerts (throwaway certificates), LogRecords (every record
// of a partition log), PeakRSS and GoMem (what a broker under load used,
// for the ingest benchmarks), PublishWindow and ReadPubacks (QoS 1 MQTT
// load on a raw connection). The benchmarks module uses the error-returning
// pieces (ReserveAddr, PollContext, CreateClusterTopic, PeakRSS, GoMem,
// PublishWindow) outside tests. An in-process core broker is in coretest,
// apart because core/server's own tests use this package; an in-process
// edge with its bridge is in edgetest, apart for the same reason.
package testkit
