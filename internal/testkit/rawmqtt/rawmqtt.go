// Package rawmqtt speaks just enough MQTT (3.1.1 or 5), packet by packet,
// for tests that must see exactly which acknowledgement a broker sends,
// with which reason code and when, or that it sends none: the paho clients
// hide all three.
package rawmqtt

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// ErrNoPacket is Read's answer when nothing arrived in time.
var ErrNoPacket = errors.New("no packet")

// Connect sends a CONNECT as clientID on conn (a persistent session when
// clean is false, kept 600 s under MQTT 5; credentials when user is set)
// and reads the CONNACK from r; it returns the CONNACK's code.
func Connect(conn net.Conn, r *bufio.Reader, version byte, clientID string, clean bool, user, pass string) (byte, error) {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: version}
	pk.Connect.ProtocolName, pk.Connect.Clean, pk.Connect.Keepalive, pk.Connect.ClientIdentifier = []byte("MQTT"), clean, 30, clientID
	if !clean && version == 5 {
		pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = 600, true
	}
	if user != "" {
		pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte(user)
		pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte(pass)
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		return 0, err
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		return 0, fmt.Errorf("write connect: %w", err)
	}
	fh, body, err := Read(conn, r, 5*time.Second)
	if err != nil {
		return 0, fmt.Errorf("read connack: %w", err)
	}
	if fh.Type != packets.Connack || len(body) < 2 {
		return 0, fmt.Errorf("want connack, got type %d", fh.Type)
	}
	return body[1], nil
}

// Read reads the next packet from r (conn's reader), waiting up to
// timeout: its fixed header and body, or ErrNoPacket.
func Read(conn net.Conn, r *bufio.Reader, timeout time.Duration) (packets.FixedHeader, []byte, error) {
	var fh packets.FixedHeader
	_ = conn.SetReadDeadline(time.Now().Add(timeout))
	b, err := r.ReadByte()
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return fh, nil, ErrNoPacket
		}
		return fh, nil, err
	}
	if err := fh.Decode(b); err != nil {
		return fh, nil, err
	}
	n, _, err := packets.DecodeLength(r)
	if err != nil {
		return fh, nil, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return fh, nil, err
	}
	fh.Remaining = n
	return fh, body, nil
}
