package bridge

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/internal/testkit"
	"github.com/tributary-io/tributary/storage"
	"github.com/tributary-io/tributary/storage/recordbatch"
)

// refuseProxy forwards everything to the core except the first epoch-0
// produce batch whose sequences cover refuseSeq: that one never reaches the
// core and is answered NOT_ENOUGH_REPLICAS (an ISR that shrank for a
// moment), in its place in the connection's response order.
type refuseProxy struct {
	ln        net.Listener
	target    string
	refuseSeq int32
	mu        sync.Mutex
	refused   bool
}

type pendingResp struct {
	corr      int32
	synthetic []byte // nil: the core answers this one
}

type proxyConn struct {
	mu     sync.Mutex
	client net.Conn
	order  []pendingResp
}

// flushSynthetic writes the synthetic answers at the head of the order. mu held.
func (pc *proxyConn) flushSynthetic() {
	for len(pc.order) > 0 && pc.order[0].synthetic != nil {
		pc.client.Write(pc.order[0].synthetic)
		pc.order = pc.order[1:]
	}
}

func readFrame(r io.Reader) ([]byte, error) {
	var sz [4]byte
	if _, err := io.ReadFull(r, sz[:]); err != nil {
		return nil, err
	}
	b := make([]byte, 4+binary.BigEndian.Uint32(sz[:]))
	copy(b, sz[:])
	_, err := io.ReadFull(r, b[4:])
	return b, err
}

func (p *refuseProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		pc := &proxyConn{client: c}
		go func() { // core -> client
			defer c.Close()
			br := bufio.NewReader(up)
			for {
				fr, err := readFrame(br)
				if err != nil {
					return
				}
				pc.mu.Lock()
				pc.flushSynthetic()
				c.Write(fr)
				if len(pc.order) > 0 {
					pc.order = pc.order[1:]
				}
				pc.flushSynthetic()
				pc.mu.Unlock()
			}
		}()
		go func() { // client -> core
			defer up.Close()
			br := bufio.NewReader(c)
			for {
				fr, err := readFrame(br)
				if err != nil {
					return
				}
				key := int16(binary.BigEndian.Uint16(fr[4:]))
				corr := int32(binary.BigEndian.Uint32(fr[8:]))
				var synth []byte
				if key == 0 {
					synth = p.maybeRefuse(fr, corr)
				}
				pc.mu.Lock()
				pc.order = append(pc.order, pendingResp{corr: corr, synthetic: synth})
				if synth != nil {
					pc.flushSynthetic()
				}
				pc.mu.Unlock()
				if synth == nil {
					up.Write(fr)
				}
			}
		}()
	}
}

func (p *refuseProxy) maybeRefuse(fr []byte, corr int32) []byte {
	ver := int16(binary.BigEndian.Uint16(fr[6:]))
	cidLen := int16(binary.BigEndian.Uint16(fr[12:]))
	body := fr[14+max(0, int(cidLen)):]
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(ver)
	if err := req.ReadFrom(body); err != nil {
		return nil
	}
	for _, t := range req.Topics {
		for _, rp := range t.Partitions {
			h, err := recordbatch.ParseHeader(rp.Records)
			if err != nil || h.ProducerEpoch != 0 {
				continue
			}
			if h.BaseSequence <= p.refuseSeq && p.refuseSeq <= h.BaseSequence+h.LastOffsetDelta {
				p.mu.Lock()
				first := !p.refused
				p.refused = true
				p.mu.Unlock()
				if !first {
					return nil
				}
				resp := kmsg.NewPtrProduceResponse()
				resp.SetVersion(ver)
				st := kmsg.NewProduceResponseTopic()
				st.Topic = t.Topic
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition, sp.ErrorCode, sp.BaseOffset = rp.Partition, kerr.NotEnoughReplicas.Code, -1
				st.Partitions = append(st.Partitions, sp)
				resp.Topics = append(resp.Topics, st)
				out := binary.BigEndian.AppendUint32(nil, 0)
				out = binary.BigEndian.AppendUint32(out, uint32(corr))
				out = resp.AppendTo(out)
				binary.BigEndian.PutUint32(out, uint32(len(out)-4))
				return out
			}
		}
	}
	return nil
}

// TestGapBehindRefusedBatchLosesNothing: the core refuses a batch with a
// retriable error (NOT_ENOUGH_REPLICAS) while the bridge, with it still in
// flight, steps over a corrupt edge batch just after it under a new epoch.
// The first batch past the gap used to go out at once; the core took it (a
// newer epoch may jump a gap), and the refused readings, intact on the
// edge, were then dropped as re-sends. Only the corrupt reading may be
// missing.
func TestGapBehindRefusedBatchLosesNothing(t *testing.T) {
	t.Parallel()
	const n, bad = 3000, 1500
	coreAddr := testkit.FreeAddr(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	px := &refuseProxy{ln: ln, target: coreAddr, refuseSeq: bad - 1}
	go px.serve()
	t.Cleanup(func() { ln.Close() })
	core := newCore(t, coreAddr, ln.Addr().String())
	core.start()

	dir := t.TempDir()
	e := openEdgeWith(t, dir, 1, storage.LogConfig{SegmentBytes: 32 << 10})
	for s := uint64(0); s < n; s++ {
		if err := e.appendReading("d-1", s, 100); err != nil {
			t.Fatal(err)
		}
	}
	e.close()
	flipInBatch(t, filepath.Join(dir, "logs", stream+"-0"), bad)
	e = openEdgeWith(t, dir, 1, storage.LogConfig{SegmentBytes: 32 << 10})

	cfg := testBridgeConfig(ln.Addr().String())
	cfg.MaxBatchBytes = 4 << 10
	rb := startBridge(t, cfg, e)
	rb.waitCaughtUp(t, 30*time.Second)
	testkit.Eventually(t, 10*time.Second, "refusal injected", func() bool {
		px.mu.Lock()
		defer px.mu.Unlock()
		return px.refused
	})
	v := judgeCore(t, core, ln.Addr().String(), map[string]uint64{"d-1": n}, nil)
	if v.lost != 1 || v.duplicated != 0 || v.outOfOrder != 0 {
		t.Fatalf("only the corrupt reading %d may be missing; the core lacks %d readings (%d duplicated, %d out of order; gaps counted: %v)",
			bad, v.lost, v.duplicated, v.outOfOrder, testutil.ToFloat64(rb.m.gaps.WithLabelValues(stream)))
	}
}

// flipInBatch damages the edge batch at offset off in its sealed segment.
func flipInBatch(t *testing.T, dir string, off int64) {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	sort.Strings(segs)
	for _, seg := range segs[:len(segs)-1] {
		b, err := os.ReadFile(seg)
		if err != nil {
			t.Fatal(err)
		}
		for pos := 0; pos < len(b); {
			h, err := recordbatch.ParseHeader(b[pos:])
			if err != nil {
				break
			}
			if h.BaseOffset == off {
				testkit.FlipByte(t, seg, int64(pos+h.Size()-5))
				return
			}
			pos += h.Size()
		}
	}
	t.Fatalf("batch at %d not found in a sealed segment", off)
}
