// SPDX-License-Identifier: MIT

package mqtt

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mochi-mqtt/server/v2/packets"
)

// refPublishHook takes publishes by reference (PublishRefHook).
type refPublishHook struct {
	HookBase
	reject bool
	calls  int
}

func (h *refPublishHook) ID() string { return "ref-publish" }

func (h *refPublishHook) Provides(b byte) bool { return b == OnPublish }

func (h *refPublishHook) OnPublish(cl *Client, pk packets.Packet) (packets.Packet, error) {
	panic("OnPublish called on a PublishRefHook")
}

func (h *refPublishHook) OnPublishRef(cl *Client, pk *packets.Packet) error {
	h.calls++
	if h.reject {
		return packets.ErrRejectPacket
	}
	pk.Payload = []byte("changed")
	return nil
}

// publishedHook records the packets OnPublished sees.
type publishedHook struct {
	HookBase
	seen []packets.Packet
}

func (h *publishedHook) ID() string { return "published" }

func (h *publishedHook) Provides(b byte) bool { return b == OnPublished }

func (h *publishedHook) OnPublished(cl *Client, pk packets.Packet) { h.seen = append(h.seen, pk) }

func TestPublishRefHook(t *testing.T) {
	s := newServer()
	defer s.Close()
	ref := new(refPublishHook)
	require.NoError(t, s.AddHook(ref, nil))
	published := new(publishedHook)
	require.NoError(t, s.AddHook(published, nil))
	cl, _, _ := newTestClient()

	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "a/b", Payload: []byte("hello")}
	require.NoError(t, s.processPublish(cl, pk))
	require.Equal(t, 1, ref.calls)
	require.Len(t, published.seen, 1)
	require.Equal(t, []byte("changed"), published.seen[0].Payload)

	ref.reject = true
	require.NoError(t, s.processPublish(cl, pk))
	require.Equal(t, 2, ref.calls)
	require.Len(t, published.seen, 1, "a rejected publish goes no further")
}

func TestOnPublishUsesPublishRefHook(t *testing.T) {
	h := &Hooks{Log: logger}
	ref := new(refPublishHook)
	require.NoError(t, h.Add(ref, nil))
	out, err := h.OnPublish(new(Client), packets.Packet{Payload: []byte("hello")})
	require.NoError(t, err)
	require.Equal(t, []byte("changed"), out.Payload)
}
