// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: 2023 mochi-mqtt, mochi-co
// SPDX-FileContributor: mochi-co

package mqtt

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/xid"

	"github.com/mochi-mqtt/server/v2/packets"
)

const (
	defaultKeepalive             uint16 = 10 // the default connection keepalive value in seconds.
	defaultClientProtocolVersion byte   = 4  // the default mqtt protocol version of connecting clients (if somehow unspecified).
	minimumKeepalive             uint16 = 5  // the minimum recommended keepalive - values under with display a warning.
)

var (
	ErrMinimumKeepalive = errors.New("client keepalive is below minimum recommended value and may exhibit connection instability")
)

// ReadFn is the function signature for the function used for reading and processing new packets.
type ReadFn func(*Client, packets.Packet) error

// readRefFn is ReadFn with the packet passed by reference. The read loop
// hands every packet down by pointer: a packets.Packet is ~800 bytes, and
// passing it by value through each frame of the publish path grew every
// read goroutine's stack to 32 KB.
type readRefFn func(*Client, *packets.Packet) error

// packetPool holds the packets the read loop decodes into. A packet goes
// back once its handler returns; nothing keeps the pointer (hooks and the
// inflight store get copies), and the byte slices it refers to are left
// alone, so copies stay valid.
var packetPool = sync.Pool{New: func() any { return new(packets.Packet) }}

// Clients contains a map of the clients known by the broker.
type Clients struct {
	internal map[string]*Client // clients known by the broker, keyed on client id.
	sync.RWMutex
}

// NewClients returns an instance of Clients.
func NewClients() *Clients {
	return &Clients{
		internal: make(map[string]*Client),
	}
}

// Add adds a new client to the clients map, keyed on client id.
func (cl *Clients) Add(val *Client) {
	cl.Lock()
	defer cl.Unlock()
	cl.internal[val.ID] = val
}

// GetAll returns all the clients.
func (cl *Clients) GetAll() map[string]*Client {
	cl.RLock()
	defer cl.RUnlock()
	m := map[string]*Client{}
	for k, v := range cl.internal {
		m[k] = v
	}
	return m
}

// Get returns the value of a client if it exists.
func (cl *Clients) Get(id string) (*Client, bool) {
	cl.RLock()
	defer cl.RUnlock()
	val, ok := cl.internal[id]
	return val, ok
}

// Len returns the length of the clients map.
func (cl *Clients) Len() int {
	cl.RLock()
	defer cl.RUnlock()
	val := len(cl.internal)
	return val
}

// Delete removes a client from the internal map.
func (cl *Clients) Delete(id string) {
	cl.Lock()
	defer cl.Unlock()
	delete(cl.internal, id)
}

// GetByListener returns clients matching a listener id.
func (cl *Clients) GetByListener(id string) []*Client {
	cl.RLock()
	defer cl.RUnlock()
	// len, not cl.Len(): a second RLock while a writer waits deadlocks
	// (mochi-mqtt/server#488).
	clients := make([]*Client, 0, len(cl.internal))
	for _, client := range cl.internal {
		if client.Net.Listener == id && !client.Closed() {
			clients = append(clients, client)
		}
	}
	return clients
}

// Client contains information about a client known by the broker.
type Client struct {
	Properties   ClientProperties // client properties
	State        ClientState      // the operational state of the client.
	Net          ClientConnection // network connection state of the client
	ID           string           // the client id.
	ops          *ops             // ops provides a reference to server ops.
	sync.RWMutex                  // mutex
}

// ClientConnection contains the connection transport and metadata for the client.
type ClientConnection struct {
	Conn     net.Conn      // the net.Conn used to establish the connection
	bconn    *connReader   // a buffered net.Conn for reading packets
	outbuf   *bytes.Buffer // a buffer for writing packets
	Remote   string        // the remote address of the client
	Listener string        // listener id of the client
	Inline   bool          // if true, the client is the built-in 'inline' embedded client
}

// ClientProperties contains the properties which define the client behaviour.
type ClientProperties struct {
	Props           packets.Properties
	Will            Will
	Username        []byte
	ProtocolVersion byte
	Clean           bool
}

// Will contains the last will and testament details for a client connection.
type Will struct {
	Payload           []byte                 // -
	User              []packets.UserProperty // -
	TopicName         string                 // -
	Flag              uint32                 // 0,1
	WillDelayInterval uint32                 // -
	Qos               byte                   // -
	Retain            bool                   // -
}

// ClientState tracks the state of the client.
type ClientState struct {
	TopicAliases    TopicAliases         // a map of topic aliases
	stopCause       atomic.Value         // reason for stopping
	Inflight        *Inflight            // a map of in-flight qos messages
	Subscriptions   *Subscriptions       // a map of the subscription filters a client maintains
	disconnected    int64                // the time the client disconnected in unix time, for calculating expiry
	outbound        chan *packets.Packet // queue for pending outbound packets
	endOnce         sync.Once            // only end once
	isTakenOver     atomic.Bool          // used to identify orphaned clients
	packetID        uint32               // the current highest packetID
	open            context.Context      // indicate that the client is open for packet exchange
	cancelOpen      context.CancelFunc   // cancel function for open context
	outboundQty     int32                // number of messages currently in the outbound queue
	writing         atomic.Bool          // a writer goroutine is draining the outbound queue
	writeLoop       atomic.Bool          // WriteLoop runs, so no writer is started on demand
	Keepalive       uint16               // the number of seconds the connection can wait
	ServerKeepalive bool                 // keepalive was set by the server
}

// newClient returns a new instance of Client. This is almost exclusively used by Server
// for creating new clients, but it lives here because it's not dependent.
func newClient(c net.Conn, o *ops) *Client {
	ctx, cancel := context.WithCancel(context.Background())
	cl := &Client{
		State: ClientState{
			Inflight:      NewInflights(),
			Subscriptions: NewSubscriptions(),
			TopicAliases:  NewTopicAliases(o.options.Capabilities.TopicAliasMaximum),
			open:          ctx,
			cancelOpen:    cancel,
			Keepalive:     defaultKeepalive,
			outbound:      make(chan *packets.Packet, o.options.Capabilities.MaximumClientWritesPending),
		},
		Properties: ClientProperties{
			ProtocolVersion: defaultClientProtocolVersion, // default protocol version
		},
		ops: o,
	}

	if c != nil {
		cl.Net = ClientConnection{
			Conn:   c,
			bconn:  newConnReader(c, o.options.ClientNetReadBufferSize),
			Remote: c.RemoteAddr().String(),
		}
	}

	return cl
}

// WriteLoop ranges over pending outbound messages and writes them to the client connection.
// The server no longer runs it: a writer goroutine is started when a packet is queued
// (startWriter) and ends when the queue is empty. While WriteLoop runs, none is started.
func (cl *Client) WriteLoop() {
	cl.State.writeLoop.Store(true)
	for {
		select {
		case pk := <-cl.State.outbound:
			cl.writeOutbound(pk)
			atomic.AddInt32(&cl.State.outboundQty, -1)
		case <-cl.State.open.Done():
			return
		}
	}
}

// startWriter starts a goroutine to write the outbound queue, unless one is
// running. It ends once the queue is empty, so a connection that is sent
// nothing has only its read goroutine (v2.7.9 kept a write goroutine for the
// life of every connection).
func (cl *Client) startWriter() {
	if cl.State.writeLoop.Load() || !cl.State.writing.CompareAndSwap(false, true) {
		return
	}
	go cl.drainOutbound()
}

// drainOutbound writes queued packets until the queue is empty or the client
// closes.
func (cl *Client) drainOutbound() {
	for {
		select {
		case pk := <-cl.State.outbound:
			cl.writeOutbound(pk)
			atomic.AddInt32(&cl.State.outboundQty, -1)
		case <-cl.State.open.Done():
			cl.State.writing.Store(false)
			return
		default:
			cl.State.writing.Store(false)
			// A packet queued after the queue looked empty, by a publisher
			// that still saw this writer running, is this writer's to write.
			if len(cl.State.outbound) == 0 || !cl.State.writing.CompareAndSwap(false, true) {
				return
			}
		}
	}
}

// writeOutbound writes a queued packet. It is a function of its own so that
// WriteLoop, which waits for most of a connection's life, keeps a frame small
// enough for the smallest goroutine stack (the packet copy WritePacket takes
// is ~800 bytes).
//
//go:noinline
func (cl *Client) writeOutbound(pk *packets.Packet) {
	if err := cl.WritePacket(*pk); err != nil {
		// TODO : Figure out what to do with error
		cl.ops.log.Debug("failed publishing packet", "error", err, "client", cl.ID, "packet", pk)
	}
}

// ParseConnect parses the connect parameters and properties for a client.
func (cl *Client) ParseConnect(lid string, pk packets.Packet) {
	cl.Net.Listener = lid

	cl.Properties.ProtocolVersion = pk.ProtocolVersion
	cl.Properties.Username = pk.Connect.Username
	cl.Properties.Clean = pk.Connect.Clean
	cl.Properties.Props = pk.Properties.Copy(false)

	if cl.Properties.Props.ReceiveMaximum > cl.ops.options.Capabilities.MaximumInflight { // 3.3.4 Non-normative
		cl.Properties.Props.ReceiveMaximum = cl.ops.options.Capabilities.MaximumInflight
	}

	if pk.Connect.Keepalive <= minimumKeepalive {
		cl.ops.log.Warn(
			ErrMinimumKeepalive.Error(),
			"client", cl.ID,
			"keepalive", pk.Connect.Keepalive,
			"recommended", minimumKeepalive,
		)
	}

	cl.State.Keepalive = pk.Connect.Keepalive                                              // [MQTT-3.2.2-22]
	cl.State.Inflight.ResetReceiveQuota(int32(cl.ops.options.Capabilities.ReceiveMaximum)) // server receive max per client
	cl.State.Inflight.ResetSendQuota(int32(cl.Properties.Props.ReceiveMaximum))            // client receive max
	cl.State.TopicAliases.Outbound = NewOutboundTopicAliases(cl.Properties.Props.TopicAliasMaximum)

	cl.ID = pk.Connect.ClientIdentifier
	if cl.ID == "" {
		cl.ID = xid.New().String() // [MQTT-3.1.3-6] [MQTT-3.1.3-7]
		cl.Properties.Props.AssignedClientID = cl.ID
	}

	if pk.Connect.WillFlag {
		cl.Properties.Will = Will{
			Qos:               pk.Connect.WillQos,
			Retain:            pk.Connect.WillRetain,
			Payload:           pk.Connect.WillPayload,
			TopicName:         pk.Connect.WillTopic,
			WillDelayInterval: pk.Connect.WillProperties.WillDelayInterval,
			User:              pk.Connect.WillProperties.User,
		}
		if pk.Properties.SessionExpiryIntervalFlag &&
			pk.Properties.SessionExpiryInterval < pk.Connect.WillProperties.WillDelayInterval {
			cl.Properties.Will.WillDelayInterval = pk.Properties.SessionExpiryInterval
		}
		if pk.Connect.WillFlag {
			cl.Properties.Will.Flag = 1 // atomic for checking
		}
	}
}

// refreshDeadline refreshes the read/write deadline for the net.Conn connection.
func (cl *Client) refreshDeadline(keepalive uint16) {
	if cl.Net.Conn == nil {
		return
	}
	if cl.Net.bconn == nil { // a connection not read through a connReader
		var expiry time.Time // nil time can be used to disable deadline if keepalive = 0
		if keepalive > 0 {
			expiry = time.Now().Add(keepaliveWindow(keepalive)) // [MQTT-3.1.2-22]
		}
		_ = cl.Net.Conn.SetDeadline(expiry) // [MQTT-3.1.2-22]
		return
	}
	cl.Net.bconn.ka.refresh(cl.Net.Conn, keepalive)
}

// keepaliveWindow is how long a client may stay silent: one and a half
// times its keepalive [MQTT-3.1.2-22], computed without overflowing uint16.
func keepaliveWindow(keepalive uint16) time.Duration {
	return time.Duration(keepalive) * time.Second * 3 / 2
}

// keepalive keeps a connection's deadline [MQTT-3.1.2-22]: a client silent
// for 1.5 × its keepalive is disconnected. Moving the deadline costs two
// runtime timer updates (read and write), which were paid on every packet;
// here a packet only notes when it came, the deadline is moved once a
// quarter of the window has gone by, and a read that a stale deadline cuts
// short is resumed (resume), so a client is disconnected exactly when it was
// before. Only the connection's read goroutine uses it.
type keepalive struct {
	window time.Duration // 0: no deadline
	last   time.Time     // when the last packet began
	armed  time.Time     // the deadline set on the connection; zero while none
}

func (k *keepalive) refresh(c net.Conn, keepalive uint16) {
	k.window = keepaliveWindow(keepalive)
	if k.window == 0 {
		if !k.armed.IsZero() {
			k.armed = time.Time{}
			_ = c.SetDeadline(k.armed)
		}
		return
	}
	now := time.Now()
	k.last = now
	if !k.armed.IsZero() && k.armed.Sub(now) > k.window-k.window/4 {
		return
	}
	k.armed = now.Add(k.window)
	_ = c.SetDeadline(k.armed)
}

// resume reports whether a read that failed with err should be retried: the
// deadline passed, but a packet came within the window, so the deadline was
// only stale. It is moved to where it would have been. A connection that
// cannot read again after a timeout (a WebSocket's error is sticky) fails
// before the deadline just set and is not resumed again, so it is closed
// at the stale deadline instead: at least 1.125 × keepalive after the last
// packet, still later than a client keeping its keepalive sends the next.
func (k *keepalive) resume(c net.Conn, err error) bool {
	if k.window == 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	now := time.Now()
	expiry := k.last.Add(k.window)
	if now.Before(k.armed) || !now.Before(expiry) {
		return false
	}
	k.armed = expiry
	_ = c.SetDeadline(expiry)
	return true
}

// NextPacketID returns the next available (unused) packet id for the client.
// If no unused packet ids are available, an error is returned and the client
// should be disconnected.
func (cl *Client) NextPacketID() (i uint32, err error) {
	cl.Lock()
	defer cl.Unlock()

	i = atomic.LoadUint32(&cl.State.packetID)
	started := i
	overflowed := false
	for {
		if overflowed && i == started {
			return 0, packets.ErrQuotaExceeded
		}

		if i >= cl.ops.options.Capabilities.maximumPacketID {
			overflowed = true
			i = 0
			continue
		}

		i++

		if _, ok := cl.State.Inflight.Get(uint16(i)); !ok {
			atomic.StoreUint32(&cl.State.packetID, i)
			return i, nil
		}
	}
}

// ResendInflightMessages attempts to resend any pending inflight messages to connected clients.
func (cl *Client) ResendInflightMessages(force bool) error {
	if cl.State.Inflight.Len() == 0 {
		return nil
	}

	for _, tk := range cl.State.Inflight.GetAll(false) {
		if tk.FixedHeader.Type == packets.Publish {
			tk.FixedHeader.Dup = true // [MQTT-3.3.1-1] [MQTT-3.3.1-3]
		}

		cl.ops.hooks.OnQosPublish(cl, tk, tk.Created, 0)
		err := cl.WritePacket(tk)
		if err != nil {
			return err
		}

		if tk.FixedHeader.Type == packets.Puback || tk.FixedHeader.Type == packets.Pubcomp {
			if ok := cl.State.Inflight.Delete(tk.PacketID); ok {
				cl.ops.hooks.OnQosComplete(cl, tk)
				atomic.AddInt64(&cl.ops.info.Inflight, -1)
			}
		}
	}

	return nil
}

// ClearInflights deletes all inflight messages for the client, e.g. for a disconnected user with a clean session.
func (cl *Client) ClearInflights() {
	for _, tk := range cl.State.Inflight.GetAll(false) {
		if ok := cl.State.Inflight.Delete(tk.PacketID); ok {
			cl.ops.hooks.OnQosDropped(cl, tk)
			atomic.AddInt64(&cl.ops.info.Inflight, -1)
		}
	}
}

// ClearExpiredInflights deletes any inflight messages which have expired.
func (cl *Client) ClearExpiredInflights(now, maximumExpiry int64) []uint16 {
	deleted := []uint16{}
	for _, tk := range cl.State.Inflight.GetAll(false) {
		expired := tk.ProtocolVersion == 5 && tk.Expiry > 0 && tk.Expiry < now // [MQTT-3.3.2-5]

		// If the maximum message expiry interval is set (greater than 0), and the message
		// retention period exceeds the maximum expiry, the message will be forcibly removed.
		enforced := maximumExpiry > 0 && now-tk.Created > maximumExpiry

		if expired || enforced {
			if ok := cl.State.Inflight.Delete(tk.PacketID); ok {
				cl.ops.hooks.OnQosDropped(cl, tk)
				atomic.AddInt64(&cl.ops.info.Inflight, -1)
				deleted = append(deleted, tk.PacketID)
			}
		}
	}

	return deleted
}

// Read reads incoming packets from the connected client and transforms them into
// packets to be handled by the packetHandler.
func (cl *Client) Read(packetHandler ReadFn) error {
	return cl.readRef(func(cl *Client, pk *packets.Packet) error {
		return packetHandler(cl, *pk)
	})
}

// readRef is Read with the packet handed to the handler by reference, from
// a pool: the server's own read loop.
func (cl *Client) readRef(handle readRefFn) error {
	for {
		if cl.Closed() {
			return nil
		}

		cl.refreshDeadline(cl.State.Keepalive)
		cl.Net.bconn.release() // wait for the next packet without a buffer, if none is buffered
		var fh packets.FixedHeader
		if err := cl.ReadFixedHeader(&fh); err != nil {
			return err
		}

		pk := packetPool.Get().(*packets.Packet)
		err := cl.readPacketInto(&fh, pk)
		if err == nil {
			err = handle(cl, pk) // Process inbound packet.
		}
		*pk = packets.Packet{}
		packetPool.Put(pk)
		if err != nil {
			return err
		}
	}
}

// readerPools holds a pool of *bufio.Reader per buffer size.
var readerPools sync.Map // int -> *sync.Pool

// connReader reads a connection through a buffer that it holds only while
// it has unread bytes. A connection spends most of its life waiting for its
// next packet; v2.7.9 waited with a ClientNetReadBufferSize buffer of its
// own (2 KB by default: 10 MB for 5,000 idle connections). Here an idle
// connection waits for the first byte of its next packet with a 1-byte read
// and takes a pooled buffer for the rest.
type connReader struct {
	conn net.Conn
	pool *sync.Pool
	buf  *bufio.Reader // nil while idle
	one  [1]byte
	ka   keepalive
}

// resumingConn is the connection as connReader reads it: a read that the
// keepalive deadline cut short while the client was still in time goes on.
type resumingConn connReader

func (c *resumingConn) Read(p []byte) (int, error) {
	for {
		n, err := c.conn.Read(p)
		if n > 0 || err == nil || !c.ka.resume(c.conn, err) {
			return n, err
		}
	}
}

func newConnReader(c net.Conn, size int) *connReader {
	p, ok := readerPools.Load(size)
	if !ok {
		p, _ = readerPools.LoadOrStore(size, &sync.Pool{New: func() any { return bufio.NewReaderSize(nil, size) }})
	}
	return &connReader{conn: c, pool: p.(*sync.Pool)}
}

// ReadByte reads one byte; an idle reader waits for it without a buffer.
func (r *connReader) ReadByte() (byte, error) {
	if r.buf != nil {
		return r.buf.ReadByte()
	}
	if _, err := io.ReadFull((*resumingConn)(r), r.one[:]); err != nil {
		return 0, err
	}
	r.acquire()
	return r.one[0], nil
}

// Read reads into p through the buffer.
func (r *connReader) Read(p []byte) (int, error) {
	if r.buf == nil {
		r.acquire()
	}
	return r.buf.Read(p)
}

func (r *connReader) acquire() {
	r.buf = r.pool.Get().(*bufio.Reader)
	r.buf.Reset((*resumingConn)(r))
}

// release returns the buffer to the pool once everything in it was read.
func (r *connReader) release() {
	if r != nil && r.buf != nil && r.buf.Buffered() == 0 {
		r.buf.Reset(nil)
		r.pool.Put(r.buf)
		r.buf = nil
	}
}

// Stop instructs the client to shut down all processing goroutines and disconnect.
func (cl *Client) Stop(err error) {
	cl.State.endOnce.Do(func() {

		if cl.Net.Conn != nil {
			_ = cl.Net.Conn.Close() // omit close error
		}

		if err != nil {
			cl.State.stopCause.Store(err)
		}

		if cl.State.cancelOpen != nil {
			cl.State.cancelOpen()
		}

		atomic.StoreInt64(&cl.State.disconnected, time.Now().Unix())
	})
}

// StopCause returns the reason the client connection was stopped, if any.
func (cl *Client) StopCause() error {
	if cl.State.stopCause.Load() == nil {
		return nil
	}
	return cl.State.stopCause.Load().(error)
}

// StopTime returns the the time the client disconnected in unix time, else zero.
func (cl *Client) StopTime() int64 {
	return atomic.LoadInt64(&cl.State.disconnected)
}

// Closed returns true if client connection is closed.
func (cl *Client) Closed() bool {
	return cl.State.open == nil || cl.State.open.Err() != nil
}

func (cl *Client) IsTakenOver() bool {
	return cl.State.isTakenOver.Load()
}

// ReadFixedHeader reads in the values of the next packet's fixed header.
func (cl *Client) ReadFixedHeader(fh *packets.FixedHeader) error {
	if cl.Net.bconn == nil {
		return ErrConnectionClosed
	}

	b, err := cl.Net.bconn.ReadByte()
	if err != nil {
		return err
	}

	err = fh.Decode(b)
	if err != nil {
		return err
	}

	var bu int
	fh.Remaining, bu, err = packets.DecodeLength(cl.Net.bconn)
	if err != nil {
		return err
	}

	if cl.ops.options.Capabilities.MaximumPacketSize > 0 && uint32(fh.Remaining+1) > cl.ops.options.Capabilities.MaximumPacketSize {
		return packets.ErrPacketTooLarge // [MQTT-3.2.2-15]
	}

	atomic.AddInt64(&cl.ops.info.BytesReceived, int64(bu+1))
	return nil
}

// ReadPacket reads the remaining buffer into an MQTT packet.
func (cl *Client) ReadPacket(fh *packets.FixedHeader) (pk packets.Packet, err error) {
	err = cl.readPacketInto(fh, &pk)
	return
}

// readPacketInto reads the remaining buffer into pk.
func (cl *Client) readPacketInto(fh *packets.FixedHeader, pk *packets.Packet) (err error) {
	atomic.AddInt64(&cl.ops.info.PacketsReceived, 1)

	pk.ProtocolVersion = cl.Properties.ProtocolVersion // inherit client protocol version for decoding
	pk.FixedHeader = *fh
	// A fresh slice for every packet: the decoded packet refers to it, so
	// the next packet must not overwrite it (no second copy is needed).
	px := make([]byte, pk.FixedHeader.Remaining)
	n, err := io.ReadFull(cl.Net.bconn, px)
	if err != nil {
		return err
	}

	atomic.AddInt64(&cl.ops.info.BytesReceived, int64(n))

	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectDecode(px)
	case packets.Disconnect:
		err = pk.DisconnectDecode(px)
	case packets.Connack:
		err = pk.ConnackDecode(px)
	case packets.Publish:
		err = pk.PublishDecode(px)
		if err == nil {
			atomic.AddInt64(&cl.ops.info.MessagesReceived, 1)
		}
	case packets.Puback:
		err = pk.PubackDecode(px)
	case packets.Pubrec:
		err = pk.PubrecDecode(px)
	case packets.Pubrel:
		err = pk.PubrelDecode(px)
	case packets.Pubcomp:
		err = pk.PubcompDecode(px)
	case packets.Subscribe:
		err = pk.SubscribeDecode(px)
	case packets.Suback:
		err = pk.SubackDecode(px)
	case packets.Unsubscribe:
		err = pk.UnsubscribeDecode(px)
	case packets.Unsuback:
		err = pk.UnsubackDecode(px)
	case packets.Pingreq:
	case packets.Pingresp:
	case packets.Auth:
		err = pk.AuthDecode(px)
	default:
		err = fmt.Errorf("invalid packet type; %v", pk.FixedHeader.Type)
	}

	if err != nil {
		return err
	}

	if cl.ops.hooks.Provides(OnPacketRead) {
		return cl.onPacketRead(pk)
	}
	return nil
}

// onPacketRead runs the OnPacketRead hooks on pk. It is a function of its
// own so that the packet copies the hooks take are on the stack only when
// a hook wants them.
//
//go:noinline
func (cl *Client) onPacketRead(pk *packets.Packet) error {
	npk, err := cl.ops.hooks.OnPacketRead(cl, *pk)
	*pk = npk
	return err
}

// WritePacket encodes and writes a packet to the client.
func (cl *Client) WritePacket(pk packets.Packet) error {
	if cl.Closed() {
		return ErrConnectionClosed
	}

	if cl.Net.Conn == nil {
		return nil
	}

	if pk.Expiry > 0 {
		expiry := pk.Expiry - time.Now().Unix()
		if expiry < 1 {
			expiry = 1
		}
		pk.Properties.MessageExpiryInterval = uint32(expiry) // [MQTT-3.3.2-6]
	}

	pk.ProtocolVersion = cl.Properties.ProtocolVersion
	if pk.Mods.MaxSize == 0 { // NB we use this statement to embed client packet sizes in tests
		pk.Mods.MaxSize = cl.Properties.Props.MaximumPacketSize
	}

	if cl.Properties.Props.RequestProblemInfoFlag && cl.Properties.Props.RequestProblemInfo == 0x0 {
		pk.Mods.DisallowProblemInfo = true // [MQTT-3.1.2-29] strict, no problem info on any packet if set
	}

	if pk.FixedHeader.Type != packets.Connack || cl.Properties.Props.RequestResponseInfo == 0x1 || cl.ops.options.Capabilities.Compatibilities.AlwaysReturnResponseInfo {
		pk.Mods.AllowResponseInfo = true // [MQTT-3.1.2-28] we need to know which properties we can encode
	}

	if cl.ops.hooks.Provides(OnPacketEncode) {
		cl.onPacketEncode(&pk)
	}

	var err error
	buf := new(bytes.Buffer)
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(buf)
	case packets.Connack:
		err = pk.ConnackEncode(buf)
	case packets.Publish:
		err = pk.PublishEncode(buf)
	case packets.Puback:
		err = pk.PubackEncode(buf)
	case packets.Pubrec:
		err = pk.PubrecEncode(buf)
	case packets.Pubrel:
		err = pk.PubrelEncode(buf)
	case packets.Pubcomp:
		err = pk.PubcompEncode(buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(buf)
	case packets.Suback:
		err = pk.SubackEncode(buf)
	case packets.Unsubscribe:
		err = pk.UnsubscribeEncode(buf)
	case packets.Unsuback:
		err = pk.UnsubackEncode(buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(buf)
	case packets.Pingresp:
		err = pk.PingrespEncode(buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(buf)
	case packets.Auth:
		err = pk.AuthEncode(buf)
	default:
		err = fmt.Errorf("%w: %v", packets.ErrNoValidPacketAvailable, pk.FixedHeader.Type)
	}
	if err != nil {
		return err
	}

	if pk.Mods.MaxSize > 0 && uint32(buf.Len()) > pk.Mods.MaxSize {
		return packets.ErrPacketTooLarge // [MQTT-3.1.2-24] [MQTT-3.1.2-25]
	}

	n, err := func() (int64, error) {
		cl.Lock()
		defer cl.Unlock()
		if len(cl.State.outbound) == 0 {
			if cl.Net.outbuf == nil {
				return buf.WriteTo(cl.Net.Conn)
			}

			// first write to buffer, then flush buffer
			n, _ := cl.Net.outbuf.Write(buf.Bytes()) // will always be successful
			err = cl.flushOutbuf()
			return int64(n), err
		}

		// there are more writes in the queue
		if cl.Net.outbuf == nil {
			if buf.Len() >= cl.ops.options.ClientNetWriteBufferSize {
				return buf.WriteTo(cl.Net.Conn)
			}
			cl.Net.outbuf = new(bytes.Buffer)
		}

		n, _ := cl.Net.outbuf.Write(buf.Bytes()) // will always be successful
		if cl.Net.outbuf.Len() < cl.ops.options.ClientNetWriteBufferSize {
			return int64(n), nil
		}

		err = cl.flushOutbuf()
		return int64(n), err
	}()
	if err != nil {
		return err
	}

	atomic.AddInt64(&cl.ops.info.BytesSent, n)
	atomic.AddInt64(&cl.ops.info.PacketsSent, 1)
	if pk.FixedHeader.Type == packets.Publish {
		atomic.AddInt64(&cl.ops.info.MessagesSent, 1)
	}

	if cl.ops.hooks.Provides(OnPacketSent) {
		cl.onPacketSent(&pk, buf.Bytes())
	}

	return err
}

// onPacketEncode and onPacketSent run their hooks off WritePacket's frame
// (see onPacketRead).
//
//go:noinline
func (cl *Client) onPacketEncode(pk *packets.Packet) {
	*pk = cl.ops.hooks.OnPacketEncode(cl, *pk)
}

//go:noinline
func (cl *Client) onPacketSent(pk *packets.Packet, b []byte) {
	cl.ops.hooks.OnPacketSent(cl, *pk, b)
}

func (cl *Client) flushOutbuf() (err error) {
	if cl.Net.outbuf == nil {
		return
	}

	_, err = cl.Net.outbuf.WriteTo(cl.Net.Conn)
	if err == nil {
		cl.Net.outbuf = nil
	}
	return
}
