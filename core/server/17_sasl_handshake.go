package server

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/auth"
)

func init() { register(17, 0, 1, (*Server).handleSaslHandshake) }

// saslState is where a connection's SASL exchange stands.
type saslState struct {
	mechanism string // chosen by SaslHandshake
	// v0: the handshake was v0, so the tokens that follow come as raw
	// size-prefixed frames with no request header.
	v0    bool
	scram *auth.ScramConversation
}

// handleSaslHandshake picks the mechanism. v0 switches the connection to
// raw tokens; v1 expects SaslAuthenticate requests (librdkafka, Java and
// franz-go use v1).
func (s *Server) handleSaslHandshake(_ context.Context, c *call,
	req *kmsg.SASLHandshakeRequest, resp *kmsg.SASLHandshakeResponse) (kmsg.Response, error) {
	resp.SupportedMechanisms = s.sec.mechanisms
	cc := c.conn
	if !cc.needSASL || cc.authed.Load() || cc.sasl.mechanism != "" {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		s.saslRefused(c, "state", "SaslHandshake outside a SASL listener's handshake")
		return resp, nil
	}
	if !slices.Contains(s.sec.mechanisms, req.Mechanism) {
		resp.ErrorCode = kerr.UnsupportedSaslMechanism.Code
		s.saslRefused(c, "mechanism", "unsupported SASL mechanism "+req.Mechanism)
		return resp, nil
	}
	cc.sasl.mechanism = req.Mechanism
	cc.sasl.v0 = req.Version == 0
	return resp, nil
}

// saslRefused counts and logs a refused login and closes the connection
// after the answer, as Kafka does.
func (s *Server) saslRefused(c *call, reason, msg string) {
	c.fail(kerr.SaslAuthenticationFailed.Code)
	c.conn.closeAfter = true
	s.sec.m.authFailed.WithLabelValues(reason).Inc()
	s.sec.logs.warn(s.logger, "sasl:"+reason+":"+c.conn.host, "SASL login refused",
		"remote", c.conn.remote, "reason", msg)
}
