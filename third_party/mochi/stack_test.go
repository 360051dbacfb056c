// SPDX-License-Identifier: MIT

package mqtt

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// readStack is the stack a connection's read goroutine may have once its
// client has published: 8 KB, the smallest stack that holds the publish path
// (v2.7.9 passed packets by value through the read path and needed 32 KB).
// Stacks come in powers of two, so a connection that costs more than halfway
// to the next size (16 KB) has outgrown it; the margin absorbs the noise of
// measuring through the runtime's stack memory.
const readStack = 8 << 10

// publishCountHook takes every publish by value, as hooks do.
type publishCountHook struct {
	HookBase
	n atomic.Int64
}

func (h *publishCountHook) ID() string { return "publish-count" }

func (h *publishCountHook) Provides(b byte) bool { return b == OnPublish }

func (h *publishCountHook) OnPublish(cl *Client, pk packets.Packet) (packets.Packet, error) {
	h.n.Add(1)
	return pk, nil
}

// TestReadStackOnPublishPath fails if a connection's read goroutine grows its
// stack past readStack while many clients publish QoS 0 and QoS 1 messages
// through an OnPublish hook. No write goroutine runs (nothing is sent to the
// clients but PUBACKs, written by the read goroutine), so the stack memory
// the connections add is their read goroutines'. The runtime halves an idle goroutine's
// stack at each GC, which would hide one doubling, so the measurement runs
// in a child process (a non-race build) with stack shrinking off.
func TestReadStackOnPublishPath(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 400 connections")
	}
	if os.Getenv("MOCHI_STACK_CHILD") == "" {
		// A child "go test", not this binary: under -race (make test) frames
		// and the stack guard are larger than in the binaries we ship.
		goTool, err := exec.LookPath("go")
		if err != nil {
			t.Skip("needs the go command to build the measured test binary")
		}
		cmd := exec.Command(goTool, "test", "-run=^TestReadStackOnPublishPath$", "-count=1") // local directory mode: its output is shown
		// Not -race either when GOFLAGS asks for it.
		goflags := strings.ReplaceAll(os.Getenv("GOFLAGS"), "-race", "")
		cmd.Env = append(os.Environ(), "MOCHI_STACK_CHILD=1", "GODEBUG=gcshrinkstackoff=1", "GOFLAGS="+goflags)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("stack measurement failed: %v\n%s", err, out)
		}
		t.Logf("%s", out)
		return
	}

	const conns, workers, rounds = 400, 4, 6
	s := New(&Options{Logger: logger})
	require.NoError(t, s.AddHook(new(AllowHook), nil))
	hook := new(publishCountHook)
	require.NoError(t, s.AddHook(hook, nil))
	ln := listeners.NewTCP(listeners.Config{ID: "t", Address: "127.0.0.1:0"})
	require.NoError(t, s.AddListener(ln))
	require.NoError(t, s.Serve())
	defer s.Close()

	stacks0, goroutines0 := stackMemory()
	cs := make([]*stackClient, conns)
	for i := range cs {
		c, err := dialStackClient(ln.Address(), fmt.Sprintf("c%d", i))
		require.NoError(t, err)
		defer c.conn.Close()
		cs[i] = c
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				for i := w; i < conns; i += workers {
					if err := cs[i].publish(byte(r%2), []byte("21.5")); err != nil {
						errs <- err
						return
					}
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, c := range cs { // a connection's packets are handled in order
		require.NoError(t, c.publish(1, []byte("fence")))
	}
	require.Equal(t, int64(conns*(rounds+1)), hook.n.Load())

	stacks1, goroutines1 := stackMemory()
	perConn := float64(stacks1-stacks0) / conns
	fmt.Printf("%d connections: %d more goroutines, %.2f KB more stack per connection\n",
		conns, goroutines1-goroutines0, perConn/1024)
	require.Less(t, perConn, float64(readStack+readStack/2), "stack per connection on the publish path: the read goroutine outgrew %d KB", readStack>>10)
}

// stackMemory is the stack memory in use after a GC, and the goroutines.
func stackMemory() (stackBytes uint64, goroutines int) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.StackInuse, runtime.NumGoroutine()
}

type stackClient struct {
	conn   net.Conn
	r      *bufio.Reader
	nextID uint16
	topic  string
}

func dialStackClient(addr, id string) (*stackClient, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4}
	pk.Connect.ProtocolName = []byte("MQTT")
	pk.Connect.Clean = true
	pk.Connect.Keepalive = 30
	pk.Connect.ClientIdentifier = id
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		return nil, err
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		return nil, err
	}
	c := &stackClient{conn: conn, r: bufio.NewReader(conn), topic: "sensors/" + id + "/reading"}
	var ack [4]byte
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c.r, ack[:]); err != nil {
		return nil, fmt.Errorf("connack: %w", err)
	}
	if ack[0] != packets.Connack<<4 || ack[3] != 0 {
		return nil, fmt.Errorf("connack % x", ack)
	}
	return c, nil
}

// publish sends one PUBLISH and, for QoS 1, reads its PUBACK.
func (c *stackClient) publish(qos byte, payload []byte) error {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, ProtocolVersion: 4,
		TopicName: c.topic, Payload: payload}
	if qos > 0 {
		c.nextID++
		pk.PacketID = c.nextID
	}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		return err
	}
	if _, err := c.conn.Write(buf.Bytes()); err != nil {
		return err
	}
	if qos == 0 {
		return nil
	}
	var ack [4]byte
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c.r, ack[:]); err != nil {
		return fmt.Errorf("puback: %w", err)
	}
	if ack[0] != packets.Puback<<4 {
		return fmt.Errorf("want puback, got % x", ack)
	}
	return nil
}
