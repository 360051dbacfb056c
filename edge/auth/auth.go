// Package auth decides who may connect to the edge and where they may
// publish: devices from the configuration with bcrypt password hashes, or
// anonymous clients when the operator explicitly allows them.
package auth

import (
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Device is one configured device login.
type Device struct {
	Username string `yaml:"username"`
	// PasswordHash is a bcrypt hash (htpasswd -B, or `tributary-edge -hash-password`).
	// It may be empty when cert_identity is set: the device then logs in
	// only with its TLS client certificate.
	PasswordHash string `yaml:"password_hash"`
	// ReadAll lets this login subscribe to every topic (a local dashboard or
	// consumer); other devices subscribe only under their own prefix.
	ReadAll bool `yaml:"read_all"`
}

// Config lists the devices allowed to connect.
type Config struct {
	// AllowAnonymous lets clients without a username connect and publish to
	// any mapped topic; meant for lab use.
	AllowAnonymous bool     `yaml:"allow_anonymous"`
	Devices        []Device `yaml:"devices"`
	// CertIdentity takes a device's identity from its verified TLS client
	// certificate (mqtt.tls.client_ca_file) instead of a password: "cn"
	// for the subject's common name, "san" for its first DNS or e-mail
	// SAN; "" (default) keeps password logins only.
	CertIdentity string `yaml:"cert_identity"`
}

// Errors returned by Authenticate; the caller logs and counts them.
var (
	ErrAnonymous   = errors.New("anonymous connections are not allowed")
	ErrUnknownUser = errors.New("unknown device")
	ErrBadPassword = errors.New("wrong password")
	ErrCertificate = errors.New("client certificate does not name this device")
)

// Authenticator checks logins and publish rights.
type Authenticator struct {
	anonymous    bool
	certIdentity string
	hashes       map[string][]byte
	readAll      map[string]bool
	// dummy is compared against for unknown users so that a wrong username
	// costs the same bcrypt time as a wrong password.
	dummy []byte
}

// New validates cfg.
func New(cfg Config) (*Authenticator, error) {
	a := &Authenticator{anonymous: cfg.AllowAnonymous, certIdentity: cfg.CertIdentity,
		hashes: make(map[string][]byte, len(cfg.Devices)), readAll: map[string]bool{}}
	switch cfg.CertIdentity {
	case "", "cn", "san":
	default:
		return nil, fmt.Errorf("auth: cert_identity %q: want cn, san or empty", cfg.CertIdentity)
	}
	for i, d := range cfg.Devices {
		if d.Username == "" {
			return nil, fmt.Errorf("auth: device %d has no username", i)
		}
		if strings.ContainsAny(d.Username, "/+#") {
			return nil, fmt.Errorf("auth: device %q: a username is one MQTT topic level and cannot hold '/', '+' or '#'", d.Username)
		}
		if _, dup := a.hashes[d.Username]; dup {
			return nil, fmt.Errorf("auth: device %q listed twice", d.Username)
		}
		if d.PasswordHash == "" && cfg.CertIdentity != "" {
			a.hashes[d.Username] = nil // certificate logins only
			a.readAll[d.Username] = d.ReadAll
			continue
		}
		if _, err := bcrypt.Cost([]byte(d.PasswordHash)); err != nil {
			return nil, fmt.Errorf("auth: device %q: password_hash is not a bcrypt hash: %w", d.Username, err)
		}
		a.hashes[d.Username] = []byte(d.PasswordHash)
		a.readAll[d.Username] = d.ReadAll
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("not a password"), bcrypt.MinCost)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	a.dummy = dummy
	return a, nil
}

// Devices is how many devices are configured.
func (a *Authenticator) Devices() int { return len(a.hashes) }

// AllowAnonymous reports whether anonymous clients may connect.
func (a *Authenticator) AllowAnonymous() bool { return a.anonymous }

// Authenticate checks a CONNECT's credentials. An empty username is an
// anonymous client; so is, as in Mosquitto, a username that is not a
// configured device sent without a password while anonymous access is
// allowed (many firmwares always send one). A configured device must
// still authenticate, and a wrong password is refused.
func (a *Authenticator) Authenticate(username string, password []byte) error {
	if username == "" {
		if a.anonymous {
			return nil
		}
		return ErrAnonymous
	}
	h, ok := a.hashes[username]
	if !ok && a.anonymous && len(password) == 0 {
		return nil
	}
	if !ok {
		_ = bcrypt.CompareHashAndPassword(a.dummy, password)
		return fmt.Errorf("%w %q", ErrUnknownUser, username)
	}
	if h == nil { // a certificate-only device
		_ = bcrypt.CompareHashAndPassword(a.dummy, password)
		return fmt.Errorf("%w for %q (it logs in with its certificate)", ErrBadPassword, username)
	}
	if err := bcrypt.CompareHashAndPassword(h, password); err != nil {
		return fmt.Errorf("%w for %q", ErrBadPassword, username)
	}
	return nil
}

// CertIdentity reports the configured certificate rule ("" when off).
func (a *Authenticator) CertIdentity() string { return a.certIdentity }

// AuthenticateCert names the device a verified client certificate
// identifies. A CONNECT username, if given, must be that name; the name
// must be a configured device.
func (a *Authenticator) AuthenticateCert(username string, cert *x509.Certificate) (string, error) {
	name := cert.Subject.CommonName
	if a.certIdentity == "san" {
		switch {
		case len(cert.DNSNames) > 0:
			name = cert.DNSNames[0]
		case len(cert.EmailAddresses) > 0:
			name = cert.EmailAddresses[0]
		default:
			name = ""
		}
	}
	if name == "" || (username != "" && username != name) {
		return "", fmt.Errorf("%w: certificate names %q, CONNECT %q", ErrCertificate, name, username)
	}
	if !a.isDevice(name) {
		return "", fmt.Errorf("%w %q", ErrUnknownUser, name)
	}
	return name, nil
}

// MayPublish reports whether username may publish to a topic naming device
// (device is "" when the topic names none). Devices publish only under their
// own prefix; anonymous clients (allowed only by explicit config) anywhere,
// topics that name no device then landing in the unmapped dead-letter stream.
func (a *Authenticator) MayPublish(username, device string) bool {
	if !a.isDevice(username) {
		return a.anonymous
	}
	if device == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(username), []byte(device)) == 1
}

// MaySubscribe reports whether username may subscribe to a filter whose
// device level is device (a literal id, or "+"/"#", or "" if the filter has
// none): read_all logins and anonymous lab clients anywhere, devices only
// under their own prefix, so one sensor cannot read its neighbours.
func (a *Authenticator) MaySubscribe(username, device string) bool {
	if !a.isDevice(username) {
		return a.anonymous
	}
	if a.readAll[username] {
		return true
	}
	return device != "" && subtle.ConstantTimeCompare([]byte(username), []byte(device)) == 1
}

// isDevice says whether username is a configured device; any other
// client that got in is anonymous.
func (a *Authenticator) isDevice(username string) bool {
	_, ok := a.hashes[username]
	return ok
}

// IsDevice is isDevice for the username bytes of a CONNECT (no copy).
func (a *Authenticator) IsDevice(username []byte) bool {
	_, ok := a.hashes[string(username)]
	return ok
}

// HashPassword returns a bcrypt hash for the config file.
func HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}
