package auth

import (
	"errors"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func hash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	a, err := New(Config{Devices: []Device{{Username: "dev-1", PasswordHash: hash(t, "secret")}, {Username: "dash", PasswordHash: hash(t, "d"), ReadAll: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Authenticate("dev-1", []byte("secret")); err != nil {
		t.Fatalf("good password refused: %v", err)
	}
	if err := a.Authenticate("dev-1", []byte("nope")); !errors.Is(err, ErrBadPassword) {
		t.Fatalf("wrong password: %v", err)
	}
	if err := a.Authenticate("dev-2", []byte("secret")); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("unknown user: %v", err)
	}
	if err := a.Authenticate("", nil); !errors.Is(err, ErrAnonymous) {
		t.Fatalf("anonymous: %v", err)
	}
	if !a.MayPublish("dev-1", "dev-1") || a.MayPublish("dev-1", "dev-2") || a.MayPublish("dev-1", "") || a.MayPublish("", "dev-1") {
		t.Fatal("ACL wrong for a configured device")
	}
	if !a.MaySubscribe("dev-1", "dev-1") || a.MaySubscribe("dev-1", "+") || a.MaySubscribe("dev-1", "dev-2") || !a.MaySubscribe("dash", "#") || a.MaySubscribe("", "dev-1") {
		t.Fatal("subscribe ACL wrong")
	}
	anon, err := New(Config{AllowAnonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := anon.Authenticate("", nil); err != nil || !anon.MayPublish("", "dev-9") || !anon.MayPublish("", "") {
		t.Fatalf("anonymous lab mode refused: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{Devices: []Device{{Username: "d", PasswordHash: "plain"}}}); err == nil {
		t.Fatal("plain-text password accepted as hash")
	}
	h := hash(t, "x")
	if _, err := New(Config{Devices: []Device{{Username: "a/b", PasswordHash: h}}}); err == nil {
		t.Fatal("username with a topic separator accepted")
	}
	if _, err := New(Config{Devices: []Device{{Username: "d", PasswordHash: h}, {Username: "d", PasswordHash: h}}}); err == nil {
		t.Fatal("duplicate device accepted")
	}
}

// TestAnonymousLikeMosquitto: with allow_anonymous, a username that is no
// configured device and comes without a password is an anonymous client
// (firmwares always send one); a configured device must still authenticate
// and a wrong or unknown-user password is refused.
func TestAnonymousLikeMosquitto(t *testing.T) {
	t.Parallel()
	a, err := New(Config{AllowAnonymous: true, Devices: []Device{{Username: "dev-1", PasswordHash: hash(t, "secret")}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Authenticate("tasmota_1234", nil); err != nil {
		t.Fatalf("unconfigured username without password refused: %v", err)
	}
	if !a.MayPublish("tasmota_1234", "anything") || !a.MaySubscribe("tasmota_1234", "#") {
		t.Fatal("an anonymous client with a username is held to a device's ACL")
	}
	if err := a.Authenticate("dev-1", nil); !errors.Is(err, ErrBadPassword) {
		t.Fatalf("configured device without password: %v", err)
	}
	if err := a.Authenticate("dev-1", []byte("wrong")); !errors.Is(err, ErrBadPassword) {
		t.Fatalf("configured device with a wrong password: %v", err)
	}
	if err := a.Authenticate("other", []byte("pw")); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("unknown user with a password: %v", err)
	}
	if a.MayPublish("dev-1", "dev-2") {
		t.Fatal("configured device may publish for another")
	}
	closed, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := closed.Authenticate("tasmota_1234", nil); err == nil {
		t.Fatal("username without password accepted while anonymous access is off")
	}
}
