package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/xdg-go/scram"
)

// Mechanism is a SCRAM mechanism as Kafka names it.
type Mechanism string

const (
	ScramSHA256 Mechanism = "SCRAM-SHA-256"
	ScramSHA512 Mechanism = "SCRAM-SHA-512"
)

// Mechanisms lists the SCRAM mechanisms served, in Kafka's enum order
// (DescribeUserScramCredentials numbers them 1 and 2).
var Mechanisms = []Mechanism{ScramSHA256, ScramSHA512}

// MinIterations is the smallest iteration count accepted (RFC 7677 and
// Kafka both use 4096).
const MinIterations = 4096

// MaxIterations bounds the work one credential costs (Kafka's limit).
const MaxIterations = 16384

func (m Mechanism) hash() (scram.HashGeneratorFcn, error) {
	switch m {
	case ScramSHA256:
		return scram.SHA256, nil
	case ScramSHA512:
		return scram.SHA512, nil
	}
	return nil, fmt.Errorf("unknown SCRAM mechanism %q", string(m))
}

// ParseMechanism maps Kafka's DescribeUserScramCredentials enum (1, 2).
func ParseMechanism(n int8) (Mechanism, bool) {
	switch n {
	case 1:
		return ScramSHA256, true
	case 2:
		return ScramSHA512, true
	}
	return "", false
}

// Code is the mechanism's number in Kafka's user-SCRAM APIs.
func (m Mechanism) Code() int8 {
	switch m {
	case ScramSHA256:
		return 1
	case ScramSHA512:
		return 2
	}
	return 0
}

// Credential is what is stored for one user and mechanism: enough to verify
// a SCRAM proof (and a PLAIN password), never the password itself.
type Credential struct {
	Salt       []byte `json:"salt"`
	StoredKey  []byte `json:"stored_key"`
	ServerKey  []byte `json:"server_key"`
	Iterations int    `json:"iterations"`
}

// NewCredential salts and derives a credential from a password. A nil salt
// draws 24 random bytes.
func NewCredential(m Mechanism, password string, salt []byte, iterations int) (Credential, error) {
	if iterations < MinIterations || iterations > MaxIterations {
		return Credential{}, fmt.Errorf("%d iterations outside [%d, %d]", iterations, MinIterations, MaxIterations)
	}
	h, err := m.hash()
	if err != nil {
		return Credential{}, err
	}
	if salt == nil {
		salt = make([]byte, 24)
		if _, err := rand.Read(salt); err != nil {
			return Credential{}, fmt.Errorf("draw salt: %w", err)
		}
	}
	cl, err := h.NewClient("", password, "")
	if err != nil {
		return Credential{}, fmt.Errorf("prepare password: %w", err)
	}
	sc, err := cl.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: iterations})
	if err != nil {
		return Credential{}, fmt.Errorf("derive keys: %w", err)
	}
	return Credential{Salt: salt, StoredKey: sc.StoredKey, ServerKey: sc.ServerKey, Iterations: iterations}, nil
}

// Verify reports whether password derives this credential (PLAIN logins).
func (c Credential) Verify(m Mechanism, password string) bool {
	d, err := NewCredential(m, password, c.Salt, c.Iterations)
	if err != nil {
		return false
	}
	return hmac.Equal(d.StoredKey, c.StoredKey)
}

// Credentials holds every user's SCRAM credentials. Safe for concurrent use.
type Credentials struct {
	mu    sync.RWMutex
	users map[string]map[Mechanism]Credential
}

// NewCredentials returns an empty store.
func NewCredentials() *Credentials {
	return &Credentials{users: map[string]map[Mechanism]Credential{}}
}

// Set stores user's credential for m, replacing any earlier one.
func (c *Credentials) Set(user string, m Mechanism, cred Credential) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.users[user] == nil {
		c.users[user] = map[Mechanism]Credential{}
	}
	c.users[user][m] = cred
}

// Delete removes user's credential for m; it reports whether one existed.
func (c *Credentials) Delete(user string, m Mechanism) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.users[user][m]; !ok {
		return false
	}
	delete(c.users[user], m)
	if len(c.users[user]) == 0 {
		delete(c.users, user)
	}
	return true
}

// Get returns user's credential for m.
func (c *Credentials) Get(user string, m Mechanism) (Credential, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	cred, ok := c.users[user][m]
	return cred, ok
}

// Users lists user names, sorted, with their mechanisms.
func (c *Credentials) Users() map[string][]Mechanism {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := map[string][]Mechanism{}
	for u, ms := range c.users {
		for m := range ms {
			out[u] = append(out[u], m)
		}
		sort.Slice(out[u], func(i, j int) bool { return out[u][i] < out[u][j] })
	}
	return out
}

// ErrAuthFailed is returned for every failed login: the client learns no
// more than that (unknown user and wrong password look alike).
var ErrAuthFailed = errors.New("authentication failed: invalid credentials")

// CheckPlain verifies a PLAIN login against any stored SCRAM credential.
func (c *Credentials) CheckPlain(user, password string) error {
	for _, m := range []Mechanism{ScramSHA512, ScramSHA256} {
		if cred, ok := c.Get(user, m); ok {
			if cred.Verify(m, password) {
				return nil
			}
			return ErrAuthFailed
		}
	}
	return ErrAuthFailed
}

// ParsePlain splits a PLAIN token (RFC 4616: authzid NUL authcid NUL
// passwd). An authzid other than empty or the user is refused, as Kafka does.
func ParsePlain(tok []byte) (user, password string, err error) {
	parts := strings.Split(string(tok), "\x00")
	if len(parts) != 3 {
		return "", "", fmt.Errorf("PLAIN token: want 3 NUL-separated fields, got %d", len(parts))
	}
	if parts[1] == "" || parts[2] == "" {
		return "", "", fmt.Errorf("PLAIN token: empty user or password")
	}
	if parts[0] != "" && parts[0] != parts[1] {
		return "", "", fmt.Errorf("PLAIN token: authorization id %q differs from user", parts[0])
	}
	return parts[1], parts[2], nil
}

// ScramConversation is one server side of a SCRAM exchange.
type ScramConversation struct {
	m      Mechanism
	creds  *Credentials
	conv   *scram.ServerConversation
	step   int
	c1Bare string // client-first-message-bare
	s1     string // server-first-message
	nonce  string // the combined nonce sent in s1
	user   string
}

// NewScramConversation starts a server conversation for m against the store.
func (c *Credentials) NewScramConversation(m Mechanism) (*ScramConversation, error) {
	h, err := m.hash()
	if err != nil {
		return nil, err
	}
	srv, err := h.NewServer(func(user string) (scram.StoredCredentials, error) {
		cred, ok := c.Get(user, m)
		if !ok {
			return scram.StoredCredentials{}, ErrAuthFailed
		}
		return scram.StoredCredentials{
			KeyFactors: scram.KeyFactors{Salt: string(cred.Salt), Iters: cred.Iterations},
			StoredKey:  cred.StoredKey,
			ServerKey:  cred.ServerKey,
		}, nil
	})
	if err != nil {
		return nil, fmt.Errorf("scram server: %w", err)
	}
	// Alphanumeric nonces, as Kafka's broker sends.
	return &ScramConversation{m: m, creds: c, conv: srv.WithNonceGenerator(hexNonce).NewConversation()}, nil
}

func hexNonce() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Step feeds one client message and returns the server's answer; done says
// the exchange succeeded. An error means the login failed.
func (s *ScramConversation) Step(msg []byte) (resp []byte, done bool, err error) {
	s.step++
	switch s.step {
	case 1:
		out, err := s.conv.Step(string(msg))
		if err != nil {
			return []byte(out), false, fmt.Errorf("%w: %v", ErrAuthFailed, err)
		}
		// Kept for librdkafka's final message (see finalEchoingClientNonce).
		if i := strings.Index(string(msg), ",n="); i >= 0 {
			s.c1Bare = string(msg)[i+1:]
		}
		s.s1, s.nonce, s.user = out, attr(out, "r"), s.conv.Username()
		return []byte(out), false, nil
	case 2:
		if r := attr(string(msg), "r"); r != s.nonce && len(r) > len(s.nonce) && strings.HasSuffix(r, s.nonce) {
			return s.finalEchoingClientNonce(string(msg))
		}
		out, err := s.conv.Step(string(msg))
		if err != nil {
			return []byte(out), false, fmt.Errorf("%w: %v", ErrAuthFailed, err)
		}
		return []byte(out), s.conv.Done() && s.conv.Valid(), nil
	}
	return nil, false, fmt.Errorf("%w: SCRAM message after the exchange ended", ErrAuthFailed)
}

// finalEchoingClientNonce verifies a client-final-message whose nonce is the
// client nonce followed by the whole server nonce, which librdkafka sends
// (its nonce is "r=" + client nonce + server-first's r, which already starts
// with the client nonce). Kafka's broker accepts a nonce that ends with the
// one it sent; xdg-go/scram insists on equality, so this one case checks
// the proof here with RFC 5802's definitions over the message as received.
func (s *ScramConversation) finalEchoingClientNonce(c2 string) ([]byte, bool, error) {
	cred, ok := s.creds.Get(s.user, s.m)
	if !ok || s.c1Bare == "" {
		return nil, false, ErrAuthFailed
	}
	i := strings.LastIndex(c2, ",p=")
	if i < 0 || !strings.HasPrefix(c2, "c=biws,") {
		return nil, false, fmt.Errorf("%w: client-final-message without proof or with channel binding", ErrAuthFailed)
	}
	proof, err := base64.StdEncoding.DecodeString(c2[i+3:])
	if err != nil {
		return nil, false, fmt.Errorf("%w: proof: %v", ErrAuthFailed, err)
	}
	h, _ := s.m.hash()
	authMsg := s.c1Bare + "," + s.s1 + "," + c2[:i]
	sig := hmacOf(h, cred.StoredKey, authMsg)
	if len(proof) != len(sig) {
		return nil, false, ErrAuthFailed
	}
	clientKey := make([]byte, len(sig))
	for j := range sig {
		clientKey[j] = proof[j] ^ sig[j]
	}
	hh := h()
	hh.Write(clientKey)
	if !hmac.Equal(hh.Sum(nil), cred.StoredKey) {
		return []byte("e=invalid-proof"), false, ErrAuthFailed
	}
	return []byte("v=" + base64.StdEncoding.EncodeToString(hmacOf(h, cred.ServerKey, authMsg))), true, nil
}

func hmacOf(h scram.HashGeneratorFcn, key []byte, msg string) []byte {
	m := hmac.New(h, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// attr returns the value of SCRAM attribute k ("r", "p") in msg.
func attr(msg, k string) string {
	for _, f := range strings.Split(msg, ",") {
		if v, ok := strings.CutPrefix(f, k+"="); ok {
			return v
		}
	}
	return ""
}

// Username is the authenticated user once the conversation succeeded.
func (s *ScramConversation) Username() string { return s.user }

// CredentialFromSalted derives the stored keys from a salted password (what
// AlterUserScramCredentials carries, so the password never crosses the
// wire): StoredKey = H(HMAC(salted, "Client Key")), ServerKey =
// HMAC(salted, "Server Key"), as RFC 5802 defines them.
func CredentialFromSalted(m Mechanism, salt, salted []byte, iterations int) (Credential, error) {
	if iterations < MinIterations || iterations > MaxIterations {
		return Credential{}, fmt.Errorf("%d iterations outside [%d, %d]", iterations, MinIterations, MaxIterations)
	}
	h, err := m.hash()
	if err != nil {
		return Credential{}, err
	}
	if len(salt) == 0 || len(salted) == 0 {
		return Credential{}, fmt.Errorf("empty salt or salted password")
	}
	mac := func(key []byte, msg string) []byte {
		hm := hmac.New(h, key)
		hm.Write([]byte(msg))
		return hm.Sum(nil)
	}
	hh := h()
	hh.Write(mac(salted, "Client Key"))
	return Credential{Salt: salt, StoredKey: hh.Sum(nil), ServerKey: mac(salted, "Server Key"), Iterations: iterations}, nil
}

// Snapshot returns every credential (for storing and replicating).
func (c *Credentials) Snapshot() map[string]map[Mechanism]Credential {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make(map[string]map[Mechanism]Credential, len(c.users))
	for u, ms := range c.users {
		out[u] = make(map[Mechanism]Credential, len(ms))
		for m, cred := range ms {
			out[u][m] = cred
		}
	}
	return out
}

// ReplaceAll makes the store hold exactly users.
func (c *Credentials) ReplaceAll(users map[string]map[Mechanism]Credential) {
	fresh := make(map[string]map[Mechanism]Credential, len(users))
	for u, ms := range users {
		fresh[u] = make(map[Mechanism]Credential, len(ms))
		for m, cred := range ms {
			fresh[u][m] = cred
		}
	}
	c.mu.Lock()
	c.users = fresh
	c.mu.Unlock()
}
