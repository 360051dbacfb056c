package bridge

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// produceVersion is the Produce version the bridge speaks: v7 is the first
// with zstd, and being non-flexible it is served by every broker since Kafka
// 2.1 as well as by the Tributary core.
const produceVersion = 7

// maxResponseBytes bounds one produce response (a few dozen bytes per
// partition in practice); a larger frame means a broken peer.
const maxResponseBytes = 1 << 20

// produceConn is one TCP connection to a partition leader on which produce
// requests are pipelined. The bridge owns it instead of going through a
// client library's connection pool because exactly-once depends on order:
// a broker handles one connection's requests in sequence, so batch k+1 is
// never appended before batch k, and if the connection breaks every
// request still pending on it fails together and the partition rewinds.
type produceConn struct {
	nc      net.Conn
	br      *bufio.Reader
	f       *kmsg.RequestFormatter
	corr    int32
	pending []int32 // correlation ids awaiting a response, oldest first
	timeout time.Duration
	buf     []byte
	stop    func() bool
	// frames carries response frames from the reader goroutine (see
	// startReading), so the forwarder can send the next batch while
	// earlier ones await their acknowledgement. quit and readDone stop it.
	frames   chan frame
	quit     chan struct{}
	readDone chan struct{}
	// waitingSince is when the connection last made progress while a
	// request was pending (unix ns; 0 with nothing pending). The leader
	// watch reads it from another goroutine.
	waitingSince atomic.Int64
}

func dialProduce(ctx context.Context, addr string, timeout time.Duration, clientID string, sec linkSecurity) (*produceConn, error) {
	d := net.Dialer{Timeout: timeout, KeepAlive: 15 * time.Second}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nc, err := sec.dial(dctx, &d, addr)
	if err != nil {
		return nil, fmt.Errorf("dial leader %s: %w", addr, err)
	}
	c := &produceConn{
		nc:      nc,
		br:      bufio.NewReaderSize(nc, 4096),
		f:       kmsg.NewRequestFormatter(kmsg.FormatterClientID(clientID)),
		timeout: timeout,
	}
	// Cancelling the bridge unblocks a read or write in progress.
	c.stop = context.AfterFunc(ctx, func() { _ = nc.Close() })
	if sec.sasl != nil {
		if err := c.authenticate(ctx, sec.sasl); err != nil {
			c.close()
			return nil, err
		}
	}
	c.startReading()
	return c, nil
}

// frame is one response frame (the body after its size) or the read error
// that ended the connection.
type frame struct {
	body []byte
	err  error
}

// startReading starts the goroutine that reads response frames for as long
// as the connection lives; close stops it. Before it runs, roundTrip reads
// its own responses (connection set-up).
func (c *produceConn) startReading() {
	c.frames = make(chan frame, maxInFlightLimit+1)
	c.quit = make(chan struct{})
	c.readDone = make(chan struct{})
	go func() {
		defer close(c.readDone)
		for {
			body, err := c.readBody()
			select {
			case c.frames <- frame{body: body, err: err}:
			case <-c.quit:
				return
			}
			if err != nil {
				return
			}
		}
	}()
}

// roundTrip sends one request and reads its response (connection set-up
// only: nothing may be pending).
func (c *produceConn) roundTrip(req kmsg.Request, resp kmsg.Response) error {
	c.corr++
	c.buf = c.f.AppendRequest(c.buf[:0], req, c.corr)
	if err := c.nc.SetDeadline(time.Now().Add(c.timeout)); err != nil {
		return err
	}
	defer func() { _ = c.nc.SetDeadline(time.Time{}) }()
	if _, err := c.nc.Write(c.buf); err != nil {
		return err
	}
	body, err := c.readFrame(c.corr)
	if err != nil {
		return err
	}
	resp.SetVersion(req.GetVersion())
	if err := resp.ReadFrom(body); err != nil {
		return fmt.Errorf("decode %T: %w", resp, err)
	}
	return nil
}

// readFrame reads one response frame and checks its correlation id; it
// returns the body after the id.
func (c *produceConn) readFrame(want int32) ([]byte, error) {
	body, err := c.readBody()
	if err != nil {
		return nil, err
	}
	return checkCorrelation(body, want)
}

// readBody reads one response frame: correlation id and body.
func (c *produceConn) readBody() ([]byte, error) {
	var sz [4]byte
	if _, err := io.ReadFull(c.br, sz[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(sz[:]))
	if n < 4 || n > maxResponseBytes {
		return nil, fmt.Errorf("frame of %d bytes", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(c.br, body); err != nil {
		return nil, err
	}
	return body, nil
}

func checkCorrelation(body []byte, want int32) ([]byte, error) {
	if got := int32(binary.BigEndian.Uint32(body)); got != want {
		return nil, fmt.Errorf("correlation id %d, want %d", got, want)
	}
	return body[4:], nil
}

// send writes one produce request without waiting for its response.
func (c *produceConn) send(req *kmsg.ProduceRequest) error {
	req.SetVersion(produceVersion)
	c.corr++
	c.buf = c.f.AppendRequest(c.buf[:0], req, c.corr)
	if err := c.nc.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return fmt.Errorf("produce to %s: %w", c.nc.RemoteAddr(), err)
	}
	if _, err := c.nc.Write(c.buf); err != nil {
		return fmt.Errorf("produce to %s: %w", c.nc.RemoteAddr(), err)
	}
	if len(c.pending) == 0 {
		c.waitingSince.Store(time.Now().UnixNano())
	}
	c.pending = append(c.pending, c.corr)
	if cap(c.buf) > 4<<20 {
		c.buf = nil // do not pin an unusually large request buffer
	}
	return nil
}

// receive waits for the response to the oldest pending request.
func (c *produceConn) receive() (*kmsg.ProduceResponse, error) {
	return c.receiveOr(nil)
}

// receiveOr waits for the response to the oldest pending request, or until
// wake fires (nil, nil): the forwarder waits on both so that records the
// edge fsyncs meanwhile go out without waiting for earlier batches'
// acknowledgements.
func (c *produceConn) receiveOr(wake <-chan struct{}) (*kmsg.ProduceResponse, error) {
	if len(c.pending) == 0 {
		return nil, fmt.Errorf("produce to %s: no request pending", c.nc.RemoteAddr())
	}
	// The broker may legitimately take the whole produce timeout plus the
	// fsync; beyond that the connection is considered stalled.
	stall := time.NewTimer(c.timeout + 5*time.Second - c.stalledFor(time.Now()))
	defer stall.Stop()
	var fr frame
	select {
	case fr = <-c.frames:
	case <-wake:
		return nil, nil
	case <-stall.C:
		return nil, fmt.Errorf("produce response from %s: %w", c.nc.RemoteAddr(), os.ErrDeadlineExceeded)
	}
	if fr.err != nil {
		return nil, fmt.Errorf("produce response from %s: %w", c.nc.RemoteAddr(), fr.err)
	}
	body, err := checkCorrelation(fr.body, c.pending[0])
	if err != nil {
		return nil, fmt.Errorf("produce response from %s: %w", c.nc.RemoteAddr(), err)
	}
	c.pending = c.pending[1:]
	if len(c.pending) == 0 {
		c.waitingSince.Store(0)
	} else {
		c.waitingSince.Store(time.Now().UnixNano())
	}
	resp := kmsg.NewPtrProduceResponse()
	resp.SetVersion(produceVersion)
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("produce response from %s: decode: %w", c.nc.RemoteAddr(), err)
	}
	return resp, nil
}

func (c *produceConn) inFlight() int { return len(c.pending) }

// close closes the connection and waits for its reader, which the closed
// socket and quit both release.
func (c *produceConn) close() {
	c.stop()
	_ = c.nc.Close()
	if c.quit != nil {
		close(c.quit)
		<-c.readDone
	}
}

// stalledFor is how long a pending request has waited without any response
// on this connection (0 when nothing is pending).
func (c *produceConn) stalledFor(now time.Time) time.Duration {
	since := c.waitingSince.Load()
	if since == 0 {
		return 0
	}
	return now.Sub(time.Unix(0, since))
}
