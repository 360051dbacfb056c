package cluster

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tributary-io/tributary/internal/testkit"
)

func gossipKey(t *testing.T) string {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(k)
}

// peerSecurity is a broker's link security with a certificate named name
// signed by ca.
func peerSecurity(t *testing.T, ca testkit.CA, name string, keys ...string) *LinkSecurity {
	t.Helper()
	cert, key := ca.PeerFiles(t, name)
	return &LinkSecurity{GossipKeys: keys, CertFile: cert, KeyFile: key, CAFile: ca.File}
}

// TestSecureLinks forms a 3-broker cluster with encrypted gossip and Raft
// and the forwarding RPC on mutual TLS, creates a topic through a
// follower (the forwarded proposal crosses the TLS RPC), then shows that a
// broker with the wrong gossip key cannot join Serf and one with the right
// key but a certificate from another CA never receives the metadata.
func TestSecureLinks(t *testing.T) {
	t.Parallel()
	c := newTestCluster(t, 4)
	ca := testkit.NewCA(t, "cluster CA")
	key := gossipKey(t)
	for i := range 3 {
		c.cfgs[i].Security = peerSecurity(t, ca, fmt.Sprintf("broker-%d", i+1), key)
		c.cfgs[i].BootstrapExpect = 3
	}
	for i := range 3 {
		c.start(i)
	}
	c.waitFor("3 secure brokers", 30*time.Second, allAlive(1, 2, 3))
	follower := c.follower()
	if err := follower.CreateTopic(testkit.Context(t, 10*time.Second), "secure-topic", 3, 3, nil); err != nil {
		t.Fatalf("create topic through a follower (TLS RPC): %v", err)
	}

	// Broker 4: the wrong gossip key. Serf cannot decrypt it, nor it Serf.
	c.cfgs[3].Security = peerSecurity(t, ca, "broker-4", gossipKey(t))
	c.cfgs[3].BootstrapExpect = 3
	c.start(3)
	// The first join and the leader's first attempts to replicate are made
	// at once, so -short watches a quarter as long (testkit.Watch).
	deadline := time.Now().Add(testkit.Watch(4 * time.Second))
	for time.Now().Before(deadline) {
		if len(c.nodes[3].members()) > 1 {
			t.Fatalf("broker with the wrong gossip key sees %d members", len(c.nodes[3].members()))
		}
		for _, n := range c.nodes[:3] {
			if len(n.members()) > 3 {
				t.Fatalf("broker %d admitted the broker with the wrong key", n.ID())
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.stop(3)

	// Broker 4 again: the right key, but a certificate the cluster does
	// not trust. Raft cannot reach it, so it never learns the metadata.
	stranger := testkit.NewCA(t, "stranger CA")
	c.cfgs[3].Security = peerSecurity(t, stranger, "broker-4b", key)
	c.cfgs[3].DataDir = t.TempDir()
	c.start(3)
	deadline = time.Now().Add(testkit.Watch(5 * time.Second))
	for time.Now().Before(deadline) {
		if _, ok := c.nodes[3].Metadata().Topics["secure-topic"]; ok {
			t.Fatal("a broker with an untrusted certificate received the metadata")
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.stop(3)
	c.waitFor("the 3 trusted brokers still agree", 10*time.Second, func(n *Node) error {
		if _, ok := n.Metadata().Topics["secure-topic"]; !ok {
			return errors.New("secure-topic missing")
		}
		return nil
	})
}
