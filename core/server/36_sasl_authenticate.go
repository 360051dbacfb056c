package server

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/auth"
)

func init() { register(36, 0, 2, (*Server).handleSaslAuthenticate) }

// handleSaslAuthenticate runs one step of the exchange the handshake chose.
// A failure answers SASL_AUTHENTICATION_FAILED and closes the connection.
func (s *Server) handleSaslAuthenticate(_ context.Context, c *call,
	req *kmsg.SASLAuthenticateRequest, resp *kmsg.SASLAuthenticateResponse) (kmsg.Response, error) {
	cc := c.conn
	if !cc.needSASL || cc.authed.Load() || cc.sasl.mechanism == "" || cc.sasl.v0 {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		resp.ErrorMessage = strp("SaslAuthenticate before SaslHandshake v1")
		s.saslRefused(c, "state", *resp.ErrorMessage)
		return resp, nil
	}
	out, err := s.saslStep(cc, req.SASLAuthBytes)
	if err != nil {
		resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
		resp.ErrorMessage = strp("Authentication failed: invalid credentials with SASL mechanism " + cc.sasl.mechanism)
		s.saslRefused(c, "credentials", err.Error())
		return resp, nil
	}
	resp.SASLAuthBytes = out
	return resp, nil
}

// saslStep feeds one client token to the chosen mechanism; when the
// exchange completes the connection is authenticated as its principal.
func (s *Server) saslStep(cc *clientConn, tok []byte) ([]byte, error) {
	switch cc.sasl.mechanism {
	case "PLAIN":
		user, pw, err := auth.ParsePlain(tok)
		if err != nil {
			return nil, err
		}
		if err := s.sec.creds.CheckPlain(user, pw); err != nil {
			return nil, fmt.Errorf("user %q: %w", user, err)
		}
		s.authenticated(cc, "User:"+user)
		return nil, nil
	case string(auth.ScramSHA256), string(auth.ScramSHA512):
		if cc.sasl.scram == nil {
			conv, err := s.sec.creds.NewScramConversation(auth.Mechanism(cc.sasl.mechanism))
			if err != nil {
				return nil, err
			}
			cc.sasl.scram = conv
		}
		out, done, err := cc.sasl.scram.Step(tok)
		if err != nil {
			return nil, err
		}
		if done {
			s.authenticated(cc, "User:"+cc.sasl.scram.Username())
		}
		return out, nil
	}
	return nil, fmt.Errorf("no SASL mechanism chosen")
}

func (s *Server) authenticated(cc *clientConn, principal string) {
	cc.principal = principal
	s.sec.m.authOK.WithLabelValues(cc.sasl.mechanism).Inc()
	cc.authed.Store(true)
}

// rawSASLFrame serves a token sent after SaslHandshake v0: the frame is the
// bare token and the answer a bare size-prefixed token. A failure closes
// the connection (v0 has no way to carry an error).
func (s *Server) rawSASLFrame(cc *clientConn, f []byte) (func() []byte, error) {
	out, err := s.saslStep(cc, f)
	if err != nil {
		s.sec.m.authFailed.WithLabelValues("credentials").Inc()
		s.sec.logs.warn(s.logger, "sasl:credentials:"+cc.host, "SASL login refused", "remote", cc.remote, "reason", err.Error())
		return nil, fmt.Errorf("%w: %v", errNotAuthenticated, err)
	}
	b := make([]byte, 4+len(out))
	binary.BigEndian.PutUint32(b, uint32(len(out)))
	copy(b[4:], out)
	return func() []byte { return b }, nil
}
