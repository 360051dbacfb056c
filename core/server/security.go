package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tributary-io/tributary/core/auth"
	"github.com/tributary-io/tributary/internal/pemfile"
)

// Kafka's listener security protocols.
const (
	ProtocolPlaintext     = "PLAINTEXT"
	ProtocolSSL           = "SSL"
	ProtocolSASLPlaintext = "SASL_PLAINTEXT"
	ProtocolSASLSSL       = "SASL_SSL"
)

// ListenerConfig is one named Kafka listener.
type ListenerConfig struct {
	// Name identifies the listener in logs (Kafka's listener name).
	Name string `yaml:"name"`
	// Protocol is PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
	Protocol string `yaml:"protocol"`
	// Addr is the address to bind.
	Addr string `yaml:"addr"`
	// AdvertisedAddr is handed to clients of this listener in Metadata and
	// FindCoordinator; empty means the bound address.
	AdvertisedAddr string `yaml:"advertised_addr"`
}

func (l ListenerConfig) tls() bool {
	return l.Protocol == ProtocolSSL || l.Protocol == ProtocolSASLSSL
}

func (l ListenerConfig) sasl() bool {
	return l.Protocol == ProtocolSASLPlaintext || l.Protocol == ProtocolSASLSSL
}

// SecurityConfig is authentication and authorization on the Kafka side.
type SecurityConfig struct {
	// TLS is used by SSL and SASL_SSL listeners.
	TLS TLSConfig `yaml:"tls"`
	// SASLMechanisms enabled on SASL listeners; empty means PLAIN,
	// SCRAM-SHA-256 and SCRAM-SHA-512.
	SASLMechanisms []string `yaml:"sasl_mechanisms"`
	// Users are bootstrap SCRAM users (an admin, the bridge): their
	// passwords are salted into credentials at start and never stored.
	Users []UserConfig `yaml:"users"`
	// SuperUsers are principals ("User:admin") that bypass ACLs.
	SuperUsers []string `yaml:"super_users"`
	// AllowEveryoneIfNoACLFound is Kafka's allow.everyone.if.no.acl.found:
	// off by default once any listener authenticates.
	AllowEveryoneIfNoACLFound bool `yaml:"allow_everyone_if_no_acl_found"`
	// InterBrokerUser is the SCRAM user (one of Users) a broker logs in as
	// when it fetches from a partition leader through the first listener;
	// it is a super user. Needed when the first listener is SASL_*.
	InterBrokerUser string `yaml:"inter_broker_user"`
	// ACLs are bootstrap bindings, e.g.
	// "allow User:bridge * write topic prefixed:sensors".
	ACLs []string `yaml:"acls"`
}

// UserConfig is one bootstrap SCRAM user.
type UserConfig struct {
	Name string `yaml:"name"`
	// Password, or PasswordFile holding it (trailing newline trimmed).
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// Iterations of the SCRAM key derivation; 0 means 4096.
	Iterations int `yaml:"iterations"`
}

// TLSConfig is a listener's certificate and client verification.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// CAFile verifies client certificates (mTLS).
	CAFile string `yaml:"ca_file"`
	// ClientAuth is none (default), request or require.
	ClientAuth string `yaml:"client_auth"`
	// PrincipalRule maps a client certificate to a principal: "" uses the
	// subject's RFC 2253 string as Kafka does ("User:CN=dev1,O=acme"),
	// "CN" its common name, "SAN" its first DNS or e-mail SAN.
	PrincipalRule string `yaml:"principal_rule"`
	// ReloadInterval is how often the files are checked for change; 0
	// means 10s. SIGHUP reloads at once. Open connections are kept.
	ReloadInterval time.Duration `yaml:"reload_interval"`
}

// validateListeners checks the listener list and the security settings it needs.
func (c Config) validateListeners() error {
	names := map[string]bool{}
	needTLS := false
	for i, l := range c.Listeners {
		switch l.Protocol {
		case ProtocolPlaintext, ProtocolSSL, ProtocolSASLPlaintext, ProtocolSASLSSL:
		default:
			return fmt.Errorf("listener %d (%s): protocol %q: want PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", i, l.Name, l.Protocol)
		}
		if l.Name == "" || names[l.Name] {
			return fmt.Errorf("listener %d: name %q empty or repeated", i, l.Name)
		}
		names[l.Name] = true
		if _, _, err := net.SplitHostPort(l.Addr); err != nil {
			return fmt.Errorf("listener %s: addr %q: %w", l.Name, l.Addr, err)
		}
		if l.AdvertisedAddr != "" {
			if _, _, err := net.SplitHostPort(l.AdvertisedAddr); err != nil {
				return fmt.Errorf("listener %s: advertised_addr %q: %w", l.Name, l.AdvertisedAddr, err)
			}
		}
		needTLS = needTLS || l.tls()
	}
	sec := c.Security
	if needTLS && (sec.TLS.CertFile == "" || sec.TLS.KeyFile == "") {
		return fmt.Errorf("security.tls: an SSL or SASL_SSL listener needs cert_file and key_file")
	}
	switch sec.TLS.ClientAuth {
	case "", "none", "request", "require":
	default:
		return fmt.Errorf("security.tls.client_auth %q: want none, request or require", sec.TLS.ClientAuth)
	}
	if (sec.TLS.ClientAuth == "request" || sec.TLS.ClientAuth == "require") && sec.TLS.CAFile == "" {
		return fmt.Errorf("security.tls.client_auth %q needs ca_file", sec.TLS.ClientAuth)
	}
	switch sec.TLS.PrincipalRule {
	case "", "CN", "SAN":
	default:
		return fmt.Errorf("security.tls.principal_rule %q: want \"\", CN or SAN", sec.TLS.PrincipalRule)
	}
	for _, m := range sec.SASLMechanisms {
		if m != "PLAIN" && m != string(auth.ScramSHA256) && m != string(auth.ScramSHA512) {
			return fmt.Errorf("security.sasl_mechanisms: %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", m)
		}
	}
	for _, u := range sec.Users {
		if u.Name == "" || (u.Password == "" && u.PasswordFile == "") {
			return fmt.Errorf("security.users: %q needs a name and a password or password_file", u.Name)
		}
	}
	if ls := c.listeners(); c.Cluster != nil && ls[0].sasl() {
		found := false
		for _, u := range sec.Users {
			found = found || (u.Name == sec.InterBrokerUser && sec.InterBrokerUser != "")
		}
		if !found {
			return fmt.Errorf("security.inter_broker_user: a cluster whose first listener is %s needs one of security.users", ls[0].Protocol)
		}
	}
	for _, a := range sec.ACLs {
		if _, err := auth.ParseACL(a); err != nil {
			return fmt.Errorf("security.acls: %w", err)
		}
	}
	return nil
}

// listeners is the configured list, or the single PLAINTEXT listener on
// KafkaAddr that a configuration without listeners has always meant.
func (c Config) listeners() []ListenerConfig {
	if len(c.Listeners) > 0 {
		return c.Listeners
	}
	return []ListenerConfig{{Name: ProtocolPlaintext, Protocol: ProtocolPlaintext, Addr: c.KafkaAddr, AdvertisedAddr: c.AdvertisedAddr}}
}

// authenticates reports whether any listener authenticates its clients,
// which turns ACL enforcement on.
func (c Config) authenticates() bool {
	for _, l := range c.listeners() {
		if l.Protocol != ProtocolPlaintext {
			return true
		}
	}
	return false
}

// securityConfigured reports whether any security setting is in use; a
// broker without writes no security state and replicates none, as before
// security existed.
func (c Config) securityConfigured() bool {
	return c.authenticates() || len(c.Security.Users) > 0 || len(c.Security.ACLs) > 0
}

// listener is one bound Kafka listener.
type listener struct {
	cfg  ListenerConfig
	ln   net.Listener
	host string // advertised
	port int32
}

func (s *Server) bindListener(lc ListenerConfig) (*listener, error) {
	ln, err := net.Listen("tcp", lc.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen kafka %s (%s): %w", lc.Name, lc.Addr, err)
	}
	adv := lc.AdvertisedAddr
	if adv == "" {
		adv = ln.Addr().String()
	}
	host, portStr, err := net.SplitHostPort(adv)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("listener %s: advertised address %q: %w", lc.Name, adv, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("listener %s: advertised port %q: %w", lc.Name, portStr, err)
	}
	if port == 0 { // advertised ":0" means "whatever we bound"
		_, p, _ := net.SplitHostPort(ln.Addr().String())
		port, _ = strconv.ParseUint(p, 10, 16)
	}
	return &listener{cfg: lc, ln: ln, host: host, port: int32(port)}, nil
}

// ListenerAddr is the bound address of the named listener, or "".
func (s *Server) ListenerAddr(name string) string {
	for _, l := range s.listeners {
		if l.cfg.Name == name {
			return l.ln.Addr().String()
		}
	}
	return ""
}

// security is the authentication and authorization state of a server.
type security struct {
	creds      *auth.Credentials
	authz      *auth.Authorizer // nil: everything allowed
	mechanisms []string
	tls        *certReloader
	m          *securityMetrics
	logs       rateLimitedLog
}

type securityMetrics struct {
	authOK     *prometheus.CounterVec
	authFailed *prometheus.CounterVec
	denied     *prometheus.CounterVec
}

func newSecurityMetrics(reg prometheus.Registerer) *securityMetrics {
	m := &securityMetrics{
		authOK: counterVec("tributary_core_authentications_total",
			"Successful client authentications, by mechanism (SSL for a client certificate).", "mechanism"),
		authFailed: counterVec("tributary_core_authentication_failures_total",
			"Refused connections and logins, by reason (tls, credentials, mechanism, state, token_size).", "reason"),
		denied: counterVec("tributary_core_authorization_denied_total",
			"Operations refused by ACLs, by resource type.", "resource"),
	}
	reg.MustRegister(m.authOK, m.authFailed, m.denied)
	return m
}

// setupSecurity builds the credential store, the authorizer and the TLS
// configuration, loading bootstrap users and ACLs and those stored earlier.
func (s *Server) setupSecurity() error {
	cfg := s.cfg.Security
	sec := &security{creds: auth.NewCredentials(), m: newSecurityMetrics(s.m.reg)}
	sec.logs.every = 5 * time.Second
	sec.mechanisms = cfg.SASLMechanisms
	if len(sec.mechanisms) == 0 {
		sec.mechanisms = []string{"PLAIN", string(auth.ScramSHA256), string(auth.ScramSHA512)}
	}
	if s.cfg.authenticates() {
		supers := cfg.SuperUsers
		if cfg.InterBrokerUser != "" {
			supers = append(slices.Clone(supers), "User:"+cfg.InterBrokerUser)
		}
		sec.authz = auth.NewAuthorizer(supers, cfg.AllowEveryoneIfNoACLFound)
	}
	s.sec = sec
	if err := s.loadSecurityState(); err != nil {
		return err
	}
	for _, u := range cfg.Users {
		pw := u.Password
		if u.PasswordFile != "" {
			b, err := os.ReadFile(u.PasswordFile)
			if err != nil {
				return fmt.Errorf("security.users %s: %w", u.Name, err)
			}
			pw = strings.TrimRight(string(b), "\r\n")
		}
		iters := u.Iterations
		if iters == 0 {
			iters = auth.MinIterations
		}
		for _, m := range auth.Mechanisms {
			if cur, ok := sec.creds.Get(u.Name, m); ok && cur.Verify(m, pw) {
				continue // unchanged: keep the stored salt
			}
			cred, err := auth.NewCredential(m, pw, nil, iters)
			if err != nil {
				return fmt.Errorf("security.users %s: %w", u.Name, err)
			}
			sec.creds.Set(u.Name, m, cred)
		}
	}
	if sec.authz != nil {
		for _, a := range cfg.ACLs {
			acl, err := auth.ParseACL(a)
			if err != nil {
				return fmt.Errorf("security.acls: %w", err)
			}
			sec.authz.Add(acl)
		}
	}
	if s.cfg.securityConfigured() {
		if err := s.saveSecurityState(); err != nil {
			return err
		}
	}
	for _, l := range s.cfg.listeners() {
		if l.tls() {
			r, err := newCertReloader(cfg.TLS, s.logger)
			if err != nil {
				return err
			}
			sec.tls = r
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				r.watch(s.ctx)
			}()
			break
		}
	}
	return nil
}

// Security state is kept in the metadata store so that users and ACLs added
// through the Kafka APIs survive a restart.
const (
	metaKeyCredentials = "security/scram-credentials"
	metaKeyACLs        = "security/acls"
)

type storedCredentials map[string]map[auth.Mechanism]auth.Credential

func (s *Server) loadSecurityState() error {
	if b, err := s.store.Value(metaKeyCredentials); err == nil && len(b) > 0 {
		var sc storedCredentials
		if err := json.Unmarshal(b, &sc); err != nil {
			return fmt.Errorf("stored SCRAM credentials: %w", err)
		}
		for u, ms := range sc {
			for m, c := range ms {
				s.sec.creds.Set(u, m, c)
			}
		}
	}
	if s.sec.authz == nil {
		return nil
	}
	if b, err := s.store.Value(metaKeyACLs); err == nil && len(b) > 0 {
		var acls []auth.ACL
		if err := json.Unmarshal(b, &acls); err != nil {
			return fmt.Errorf("stored ACLs: %w", err)
		}
		s.sec.authz.Set(acls)
	}
	return nil
}

// securityDocs encodes the credentials and ACLs as stored and replicated.
func (s *Server) securityDocs() (creds, acls []byte, err error) {
	if creds, err = json.Marshal(storedCredentials(s.sec.creds.Snapshot())); err != nil {
		return nil, nil, fmt.Errorf("encode SCRAM credentials: %w", err)
	}
	if s.sec.authz != nil {
		if acls, err = json.Marshal(s.sec.authz.All()); err != nil {
			return nil, nil, fmt.Errorf("encode ACLs: %w", err)
		}
	}
	return creds, acls, nil
}

// saveSecurityState persists credentials and ACLs locally and, in a
// cluster, replicates them through Raft to every broker.
func (s *Server) saveSecurityState() error {
	s.secMu.Lock()
	defer s.secMu.Unlock()
	return s.saveSecurityStateLocked()
}

// saveSecurityStateLocked is saveSecurityState with secMu held.
func (s *Server) saveSecurityStateLocked() error {
	creds, acls, err := s.securityDocs()
	if err != nil {
		return err
	}
	if err := s.storeSecurityDocs(creds, acls); err != nil {
		return err
	}
	if s.cluster == nil {
		return nil // still starting: syncSecurity seeds the cluster from the store
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.Replication.AckTimeout)
	defer cancel()
	if err := s.cluster.PutSecurity(ctx, metaKeyCredentials, creds); err != nil {
		return fmt.Errorf("replicate SCRAM credentials: %w", err)
	}
	if acls != nil {
		if err := s.cluster.PutSecurity(ctx, metaKeyACLs, acls); err != nil {
			return fmt.Errorf("replicate ACLs: %w", err)
		}
	}
	return nil
}

func (s *Server) storeSecurityDocs(creds, acls []byte) error {
	if err := s.store.PutValue(metaKeyCredentials, creds); err != nil {
		return fmt.Errorf("store SCRAM credentials: %w", err)
	}
	if acls != nil {
		if err := s.store.PutValue(metaKeyACLs, acls); err != nil {
			return fmt.Errorf("store ACLs: %w", err)
		}
	}
	return nil
}

// syncSecurity keeps this broker's credentials and ACLs equal to the
// replicated ones, merged with its configuration's bootstrap users and
// ACLs (which therefore come back if deleted through the API). A cluster
// with no replicated state yet is seeded with this broker's.
func (s *Server) syncSecurity(ctx context.Context) {
	var applied [2]string
	seeded := false
	for {
		ch := s.cluster.Watch()
		md := s.cluster.Metadata()
		creds, haveCreds := md.Security[metaKeyCredentials]
		acls := md.Security[metaKeyACLs]
		if !haveCreds && !seeded && s.cluster.MetadataCurrent() {
			seeded = true
			if err := s.saveSecurityState(); err != nil && ctx.Err() == nil {
				s.logger.Warn("seeding the cluster's security state failed; another broker may", "err", err)
			}
		}
		if haveCreds && (string(creds) != applied[0] || string(acls) != applied[1]) {
			c, a, err := s.applyReplicatedSecurity()
			if err != nil {
				s.logger.Error("replicated security state not applied", "err", err)
			}
			applied = [2]string{string(c), string(a)}
		}
		select {
		case <-ctx.Done():
			return
		case <-ch:
		case <-time.After(time.Second): // MetadataCurrent has no change signal of its own
		}
	}
}

// applyReplicatedSecurity installs the replicated credentials and ACLs, read
// again under secMu: a copy read before a local change was saved must not
// undo it. It returns the documents it applied.
func (s *Server) applyReplicatedSecurity() (creds, acls []byte, err error) {
	s.secMu.Lock()
	defer s.secMu.Unlock()
	md := s.cluster.Metadata()
	creds, haveCreds := md.Security[metaKeyCredentials]
	acls, haveACLs := md.Security[metaKeyACLs]
	if !haveCreds {
		return nil, nil, nil
	}
	return creds, acls, s.installSecurityDocs(creds, acls, haveACLs)
}

func (s *Server) installSecurityDocs(creds, acls []byte, haveACLs bool) error {
	var sc storedCredentials
	if err := json.Unmarshal(creds, &sc); err != nil {
		return fmt.Errorf("replicated SCRAM credentials: %w", err)
	}
	if sc == nil {
		sc = storedCredentials{}
	}
	for _, u := range s.cfg.Security.Users { // bootstrap users stay
		for _, m := range auth.Mechanisms {
			if _, ok := sc[u.Name][m]; ok {
				continue
			}
			if cur, ok := s.sec.creds.Get(u.Name, m); ok {
				if sc[u.Name] == nil {
					sc[u.Name] = map[auth.Mechanism]auth.Credential{}
				}
				sc[u.Name][m] = cur
			}
		}
	}
	s.sec.creds.ReplaceAll(sc)
	if s.sec.authz != nil && haveACLs {
		var list []auth.ACL
		if err := json.Unmarshal(acls, &list); err != nil {
			return fmt.Errorf("replicated ACLs: %w", err)
		}
		s.sec.authz.Set(list)
		for _, a := range s.cfg.Security.ACLs { // bootstrap ACLs stay
			if acl, err := auth.ParseACL(a); err == nil {
				s.sec.authz.Add(acl)
			}
		}
	}
	c, a, err := s.securityDocs()
	if err != nil {
		return err
	}
	return s.storeSecurityDocs(c, a)
}

// allowed checks an operation against the ACLs, counting refusals.
func (s *Server) allowed(c *call, op auth.Operation, rt auth.ResourceType, name string) bool {
	if s.sec == nil || s.sec.authz == nil {
		return true
	}
	if s.sec.authz.Authorize(c.conn.principal, c.conn.host, op, rt, name) {
		return true
	}
	s.sec.m.denied.WithLabelValues(rt.String()).Inc()
	s.sec.logs.warn(s.logger, "denied:"+c.conn.principal, "operation refused by ACLs",
		"principal", c.conn.principal, "host", c.conn.host, "operation", op.String(), "resource", rt.String(), "name", name)
	return false
}

// authzActive reports whether ACLs are enforced.
func (s *Server) authzActive() bool { return s.sec != nil && s.sec.authz != nil }

// certReloader serves the current certificate and client CA pool, re-read
// when the files change or on SIGHUP; handshakes after a reload use the
// new files, open connections keep theirs.
type certReloader struct {
	cfg    TLSConfig
	logger *slog.Logger
	cur    atomic.Pointer[tls.Config]
	stamp  string // modification times of the files last loaded
}

func newCertReloader(cfg TLSConfig, logger *slog.Logger) (*certReloader, error) {
	r := &certReloader{cfg: cfg, logger: logger}
	if err := r.load(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) files() []string {
	f := []string{r.cfg.CertFile, r.cfg.KeyFile}
	if r.cfg.CAFile != "" {
		f = append(f, r.cfg.CAFile)
	}
	return f
}

func (r *certReloader) fileStamp() string {
	var b strings.Builder
	for _, f := range r.files() {
		if st, err := os.Stat(f); err == nil {
			fmt.Fprintf(&b, "%s:%d:%d;", f, st.ModTime().UnixNano(), st.Size())
		}
	}
	return b.String()
}

func (r *certReloader) load() error {
	stamp := r.fileStamp()
	cert, err := tls.LoadX509KeyPair(r.cfg.CertFile, r.cfg.KeyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate %s: %w", r.cfg.CertFile, err)
	}
	tc := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
	}
	if r.cfg.CAFile != "" {
		pool, err := pemfile.CertPool(r.cfg.CAFile)
		if err != nil {
			return fmt.Errorf("TLS CA: %w", err)
		}
		tc.ClientCAs = pool
		switch r.cfg.ClientAuth {
		case "request":
			tc.ClientAuth = tls.VerifyClientCertIfGiven
		case "require":
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	r.cur.Store(tc)
	r.stamp = stamp
	return nil
}

// config is what each new TLS handshake uses.
func (r *certReloader) config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.cur.Load(), nil
		},
	}
}

// watch reloads on SIGHUP and when the files change, until ctx ends. A
// failed reload keeps the previous certificate.
func (r *certReloader) watch(ctx context.Context) {
	every := r.cfg.ReloadInterval
	if every <= 0 {
		every = 10 * time.Second
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		case <-t.C:
			if r.fileStamp() == r.stamp {
				continue
			}
		}
		if err := r.load(); err != nil {
			r.logger.Error("TLS certificate reload failed; keeping the previous one", "err", err)
			continue
		}
		r.logger.Info("TLS certificate reloaded", "cert", r.cfg.CertFile)
	}
}

// principalFromCert maps a verified client certificate to a principal.
func principalFromCert(cert *x509.Certificate, rule string) string {
	switch rule {
	case "CN":
		return "User:" + cert.Subject.CommonName
	case "SAN":
		if len(cert.DNSNames) > 0 {
			return "User:" + cert.DNSNames[0]
		}
		if len(cert.EmailAddresses) > 0 {
			return "User:" + cert.EmailAddresses[0]
		}
		return "User:" + cert.Subject.CommonName
	}
	return "User:" + cert.Subject.String()
}

// rateLimitedLog logs one line per key per interval, counting the rest, so
// a client hammering bad logins cannot flood the log.
type rateLimitedLog struct {
	every time.Duration
	mu    sync.Mutex
	last  map[string]time.Time
	held  map[string]int
}

func (r *rateLimitedLog) warn(l *slog.Logger, key, msg string, args ...any) {
	r.mu.Lock()
	if r.last == nil {
		r.last, r.held = map[string]time.Time{}, map[string]int{}
	}
	now := time.Now()
	if now.Sub(r.last[key]) < r.every {
		r.held[key]++
		r.mu.Unlock()
		return
	}
	if len(r.last) > 1024 { // bound the memory of distinct keys
		clear(r.last)
		clear(r.held)
	}
	suppressed := r.held[key]
	r.last[key], r.held[key] = now, 0
	r.mu.Unlock()
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	l.Warn(msg, args...)
}

// handshakeTLS runs the server handshake with a deadline and derives the
// connection's certificate principal.
func (s *Server) handshakeTLS(ctx context.Context, nc net.Conn, cc *clientConn) (net.Conn, error) {
	tc := tls.Server(nc, s.sec.tls.config())
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	if certs := tc.ConnectionState().PeerCertificates; len(certs) > 0 {
		cc.principal = principalFromCert(certs[0], s.cfg.Security.TLS.PrincipalRule)
		s.sec.m.authOK.WithLabelValues("SSL").Inc()
	}
	return tc, nil
}

var errNotAuthenticated = errors.New("request before SASL authentication")

// preAuthAllowed lists what a SASL listener serves before authentication.
func preAuthAllowed(key int16) bool {
	return slices.Contains([]int16{17, 18, 36}, key)
}

// advertisedHost and advertisedPort are the address of the listener the
// client connected to, so an SSL client is sent back to the SSL port.
func (s *Server) advertisedHost(c *call) string {
	if c.conn.listener != nil {
		return c.conn.listener.host
	}
	return s.host
}

func (s *Server) advertisedPort(c *call) int32 {
	if c.conn.listener != nil {
		return c.conn.listener.port
	}
	return s.port
}

// dialInterBroker connects to another broker's first listener as this
// broker: TLS (presenting this broker's certificate, verifying against the
// configured CA) and a SCRAM-SHA-512 login as the inter-broker user, as
// the listener requires.
func (s *Server) dialInterBroker(ctx context.Context, c net.Conn, addr string) (net.Conn, error) {
	l := s.cfg.listeners()[0]
	if l.tls() {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		t := s.cfg.Security.TLS
		if t.CAFile != "" {
			pool, err := pemfile.CertPool(t.CAFile)
			if err != nil {
				return nil, fmt.Errorf("inter-broker TLS CA: %w", err)
			}
			tc.RootCAs = pool
		}
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("inter-broker TLS certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
		if host, _, err := net.SplitHostPort(addr); err == nil {
			tc.ServerName = host
		}
		tlsConn := tls.Client(c, tc)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("inter-broker TLS to %s: %w", addr, err)
		}
		c = tlsConn
	}
	return c, nil
}

// interBrokerPassword is the inter-broker user's password from the config.
func (s *Server) interBrokerPassword() (string, error) {
	for _, u := range s.cfg.Security.Users {
		if u.Name != s.cfg.Security.InterBrokerUser {
			continue
		}
		if u.PasswordFile == "" {
			return u.Password, nil
		}
		b, err := os.ReadFile(u.PasswordFile)
		if err != nil {
			return "", fmt.Errorf("inter-broker password: %w", err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	return "", fmt.Errorf("inter-broker user %q not among security.users", s.cfg.Security.InterBrokerUser)
}
