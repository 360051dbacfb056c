package server

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"

	"github.com/tributary-io/tributary/core/auth"
)

// errFrame marks input that breaks the protocol: the connection is closed.
var errFrame = errors.New("malformed frame")

// serveConn runs one client connection. A reader goroutine reads frames
// ahead (clients pipeline requests); this goroutine serves them one at a
// time, in order, as Kafka does, which keeps an idempotent producer's
// pipelined batches in append order; a writer goroutine sends responses in
// request order. A request whose remaining work is only waiting (acks=all
// produce waiting for its fsync) finishes aside, so the next request is
// served meanwhile. A request that blocks while it is served (long poll,
// group join) holds up only its own connection.
func (s *Server) serveConn(parent context.Context, nc net.Conn, l *listener) {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	remote := nc.RemoteAddr().String()
	log := s.logger.With("remote", remote)
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	cc := &clientConn{remote: remote, host: host, listener: l, principal: auth.Anonymous}
	if l != nil && l.cfg.tls() {
		tc, err := s.handshakeTLS(ctx, nc, cc)
		if err != nil {
			s.sec.m.authFailed.WithLabelValues("tls").Inc()
			s.sec.logs.warn(log, "tls:"+host, "closing connection: TLS handshake failed", "listener", l.cfg.Name, "err", err)
			_ = nc.Close()
			return
		}
		nc = tc
	}
	if l != nil && l.cfg.sasl() {
		cc.needSASL = true
	} else {
		cc.authed.Store(true)
	}

	frames := make(chan []byte, defaultMaxPipelinedReads)
	out := make(chan *pendingResponse, maxPendingResponses)
	var readErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // closing the conn is what unblocks the reader and writer
		defer wg.Done()
		<-ctx.Done()
		_ = nc.Close()
	}()
	go func() {
		defer wg.Done()
		defer close(frames)
		br := bufio.NewReaderSize(nc, 64<<10)
		// Before authentication only small SASL frames are read, so an
		// unauthenticated client cannot make the broker allocate much. The
		// limits are taken once a frame's size has arrived: a client sends
		// its first request after the login's answer, which is written only
		// after the connection is marked authenticated.
		limits := func() (int32, int32) {
			if !cc.authed.Load() {
				return 0, maxSASLFrameBytes
			}
			return 8, s.cfg.MaxFrameBytes
		}
		for {
			f, err := readFrame(br, limits)
			if err != nil {
				readErr = err
				return
			}
			s.m.bytesIn.Add(float64(len(f) + 4))
			select {
			case frames <- f:
			case <-ctx.Done():
				return
			}
		}
	}()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		s.writeResponses(ctx, cancel, nc, out, log)
	}()

	var aside sync.WaitGroup // requests finishing off the loop
serve:
	for f := range frames {
		done, wait, err := s.prepareFrame(ctx, cc, f)
		if err != nil {
			if errors.Is(err, errFrame) {
				s.m.badFrames.Inc()
				log.Warn("closing connection: bad request", "err", err)
			} else if errors.Is(err, errNotAuthenticated) {
				// counted and logged (rate-limited) where refused
			} else if ctx.Err() == nil {
				log.Error("closing connection: request failed", "err", err)
			}
			cancel()
			break
		}
		p := &pendingResponse{ready: make(chan struct{})}
		if wait {
			aside.Add(1)
			go func() {
				defer aside.Done()
				p.frame = done()
				close(p.ready)
			}()
		} else {
			p.frame = done()
			close(p.ready)
		}
		select {
		case out <- p:
		case <-ctx.Done():
			break serve
		}
		if cc.closeAfter {
			break // a failed login: answer, then close as Kafka does
		}
	}
	close(out)
	<-writerDone // all responses written, or the connection is gone
	cancel()
	aside.Wait()
	wg.Wait()
	if readErr != nil && !errors.Is(readErr, io.EOF) && !errors.Is(readErr, net.ErrClosed) && parent.Err() == nil {
		if errors.Is(readErr, errFrame) && !cc.authed.Load() {
			s.sec.m.authFailed.WithLabelValues("token_size").Inc()
			s.sec.logs.warn(log, "sasl:frame:"+host, "closing connection: bad frame before authentication", "err", readErr)
		} else if errors.Is(readErr, errFrame) {
			s.m.badFrames.Inc()
			log.Warn("closing connection: bad frame", "err", readErr)
		} else {
			log.Debug("connection read ended", "err", readErr)
		}
	}
}

// maxPendingResponses bounds the requests of one connection that are served
// but not yet answered (acks=all produces waiting for fsync).
const maxPendingResponses = 8

// pendingResponse is one response slot, filled in request order.
type pendingResponse struct {
	ready chan struct{}
	frame []byte // nil: no response (acks=0)
}

// writeResponses writes responses in request order, flushing whenever it
// would otherwise wait, so pipelined responses share writes but none waits
// in the buffer for a slower one.
func (s *Server) writeResponses(ctx context.Context, cancel context.CancelFunc, nc net.Conn, out <-chan *pendingResponse, log *slog.Logger) {
	bw := bufio.NewWriterSize(nc, 64<<10)
	flush := func() bool {
		if bw.Buffered() == 0 {
			return true
		}
		if err := bw.Flush(); err != nil {
			log.Debug("flush responses", "err", err)
			cancel()
			return false
		}
		return true
	}
	for p := range out {
		select {
		case <-p.ready:
		default:
			if !flush() {
				return
			}
			select {
			case <-p.ready:
			case <-ctx.Done():
				return
			}
		}
		if p.frame != nil {
			if _, err := bw.Write(p.frame); err != nil {
				log.Debug("write response", "err", err)
				cancel()
				return
			}
			s.m.bytesOut.Add(float64(len(p.frame)))
			recycleFrame(p.frame)
			p.frame = nil
		}
		if len(out) == 0 && !flush() {
			return
		}
	}
	flush()
}

// clientConn is per-connection state handlers may need.
type clientConn struct {
	remote   string
	host     string // remote IP, for ACL host matching
	clientID string
	listener *listener // nil in tests that call handlers directly

	// principal is "User:ANONYMOUS" until a SASL login or a client
	// certificate names the client.
	principal string
	// needSASL: the listener authenticates with SASL; until authed only
	// ApiVersions, SaslHandshake and SaslAuthenticate are served.
	needSASL bool
	authed   atomic.Bool
	sasl     saslState
	// closeAfter ends the connection once the current response is sent.
	closeAfter bool
}

// maxSASLFrameBytes bounds a frame read before authentication (Kafka's
// sasl.server.max.receive.size is 512 KiB; real tokens are tiny).
const maxSASLFrameBytes = 64 << 10

// readFrame reads one size-prefixed request frame.
func readFrame(r io.Reader, limits func() (minBytes, maxBytes int32)) ([]byte, error) {
	var sz [4]byte
	if _, err := io.ReadFull(r, sz[:]); err != nil {
		return nil, err
	}
	minBytes, maxBytes := limits()
	n := int32(binary.BigEndian.Uint32(sz[:]))
	// key, version and correlation id are 8 bytes; anything shorter is not
	// a request (a raw SASL v0 token may be shorter: minBytes is then 0).
	if n < minBytes || n > maxBytes {
		return nil, fmt.Errorf("%w: frame size %d outside [%d, %d]", errFrame, n, minBytes, maxBytes)
	}
	f := make([]byte, n)
	if _, err := io.ReadFull(r, f); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: truncated frame (%d bytes announced)", errFrame, n)
		}
		return nil, fmt.Errorf("read frame body: %w", err)
	}
	return f, nil
}
