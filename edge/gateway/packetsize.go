package gateway

import (
	"net"
	"sync"
)

// sizeGuardConn tells an MQTT 5 client why it is cut off when it sends a
// packet over the Maximum Packet Size: mochi reads the fixed header,
// returns ErrPacketTooLarge and closes the connection without a word,
// where MQTT 5 (4.13, 3.14.2.1) wants DISCONNECT 0x95 first. The wrapper
// follows the packet framing of the bytes mochi reads (fixed headers and
// remaining lengths only; the protocol version from CONNECT) and writes
// the DISCONNECT itself as soon as the oversized header has been read,
// before handing the bytes to mochi. A 3.1.1 client is only disconnected:
// that protocol has no server DISCONNECT.
type sizeGuardConn struct {
	net.Conn
	limit uint32 // mochi's check: remaining length + 1 > limit

	// framing state, touched only by the reading goroutine
	inHeader bool // reading the remaining-length varint
	rl       uint32
	mult     uint32
	varBytes int
	skip     uint32 // body bytes left in the current packet
	packets  int    // packets whose header has been read
	bodyPos  uint32 // position in the first packet's body
	version  byte   // from CONNECT
	told     sync.Once
}

func guardPacketSize(c net.Conn, limit uint32) net.Conn {
	if limit == 0 {
		return c
	}
	return &sizeGuardConn{Conn: c, limit: limit}
}

// NetConn is the wrapped connection (as tls.Conn names it), so hooks can
// reach a TLS connection's state.
func (c *sizeGuardConn) NetConn() net.Conn { return c.Conn }

// disconnectTooLarge is DISCONNECT, reason 0x95 Packet too large, no properties.
var disconnectTooLarge = []byte{0xe0, 0x02, 0x95, 0x00}

func (c *sizeGuardConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.track(b[:n])
	return n, err
}

func (c *sizeGuardConn) track(b []byte) {
	for i := 0; i < len(b); {
		if c.skip > 0 {
			k := uint32(len(b) - i)
			if k > c.skip {
				k = c.skip
			}
			if c.packets == 1 && c.bodyPos <= 6 && c.bodyPos+k > 6 {
				c.version = b[i+int(6-c.bodyPos)] // CONNECT: name length (2), "MQTT" (4), level
			}
			if c.packets == 1 {
				c.bodyPos += k
			}
			c.skip -= k
			i += int(k)
			continue
		}
		if !c.inHeader { // packet type byte
			c.inHeader, c.rl, c.mult, c.varBytes = true, 0, 1, 0
			i++
			continue
		}
		v := b[i]
		i++
		c.rl += uint32(v&0x7f) * c.mult
		c.mult *= 128
		c.varBytes++
		if v&0x80 != 0 && c.varBytes < 4 {
			continue
		}
		c.inHeader = false
		c.packets++
		if c.rl+1 > c.limit {
			if c.version == 5 {
				c.told.Do(func() { _, _ = c.Conn.Write(disconnectTooLarge) })
			}
			c.skip = 0 // mochi closes the connection now
			return
		}
		c.skip = c.rl
	}
}
