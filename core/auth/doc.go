// Package auth owns who a Kafka client is and what it may do: the SCRAM
// credential store (salted keys, never passwords), PLAIN and SCRAM-SHA-256/512
// server conversations built on github.com/xdg-go/scram, and the ACL
// authorizer with Kafka's semantics (principals like "User:alice", resource
// types topic/group/cluster/transactional-id, literal and prefixed patterns,
// allow/deny with deny winning, super users, allow.everyone.if.no.acl.found).
//
// The package is protocol-free except for Kafka's ACL enums, which it takes
// from kmsg so that CreateAcls/DescribeAcls carry them unchanged.
package auth
