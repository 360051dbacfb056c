package server

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// errFrame marks input that breaks the protocol: the connection is closed.
var errFrame = errors.New("malformed frame")

// serveConn runs one client connection. A reader goroutine reads frames
// ahead (clients pipeline requests) while this goroutine handles them one at
// a time, in order, as Kafka does: this keeps the response order and the
// append order of an idempotent producer's pipelined batches. A request that
// blocks (long poll, group join) holds up only its own connection.
func (s *Server) serveConn(parent context.Context, nc net.Conn) {
	ctx, cancel := context.WithCancel(parent)
	remote := nc.RemoteAddr().String()
	log := s.logger.With("remote", remote)

	frames := make(chan []byte, defaultMaxPipelinedReads)
	var readErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // closing the conn is what unblocks the reader
		defer wg.Done()
		<-ctx.Done()
		_ = nc.Close()
	}()
	go func() {
		defer wg.Done()
		defer close(frames)
		br := bufio.NewReaderSize(nc, 64<<10)
		for {
			f, err := readFrame(br, s.cfg.MaxFrameBytes)
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
	defer func() {
		cancel()
		wg.Wait()
		if readErr != nil && !errors.Is(readErr, io.EOF) && !errors.Is(readErr, net.ErrClosed) && parent.Err() == nil {
			if errors.Is(readErr, errFrame) {
				s.m.badFrames.Inc()
				log.Warn("closing connection: bad frame", "err", readErr)
			} else {
				log.Debug("connection read ended", "err", readErr)
			}
		}
	}()

	bw := bufio.NewWriterSize(nc, 64<<10)
	cc := &clientConn{remote: remote}
	for f := range frames {
		resp, err := s.handleFrame(ctx, cc, f)
		if err != nil {
			if errors.Is(err, errFrame) {
				s.m.badFrames.Inc()
				log.Warn("closing connection: bad request", "err", err)
			} else if ctx.Err() == nil {
				log.Error("closing connection: request failed", "err", err)
			}
			return
		}
		if resp != nil {
			if _, err := bw.Write(resp); err != nil {
				log.Debug("write response", "err", err)
				return
			}
			s.m.bytesOut.Add(float64(len(resp)))
		}
		// Flush once the pipeline is drained, so pipelined responses share writes.
		if len(frames) == 0 {
			if err := bw.Flush(); err != nil {
				log.Debug("flush responses", "err", err)
				return
			}
		}
	}
	if err := bw.Flush(); err != nil {
		log.Debug("flush responses", "err", err)
	}
}

// clientConn is per-connection state handlers may need.
type clientConn struct {
	remote   string
	clientID string
}

// readFrame reads one size-prefixed request frame.
func readFrame(r io.Reader, maxBytes int32) ([]byte, error) {
	var sz [4]byte
	if _, err := io.ReadFull(r, sz[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(sz[:]))
	// key, version and correlation id are 8 bytes; anything shorter is not a request.
	if n < 8 || n > maxBytes {
		return nil, fmt.Errorf("%w: frame size %d outside [8, %d]", errFrame, n, maxBytes)
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
