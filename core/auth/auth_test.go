package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha512"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func mustACL(t testing.TB, s string) ACL {
	t.Helper()
	a, err := ParseACL(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAuthorize(t *testing.T) {
	a := NewAuthorizer([]string{"User:admin"}, false)
	a.Add(
		mustACL(t, "allow User:alice * write topic prefixed:sensors."),
		mustACL(t, "allow User:alice * read topic sensors.raw"),
		mustACL(t, "deny User:alice * write topic sensors.secret"),
		mustACL(t, "allow User:* * read group *"),
		mustACL(t, "allow User:bob 10.0.0.1 all topic logs"),
	)
	read, write, describe, del := kmsg.ACLOperationRead, kmsg.ACLOperationWrite, kmsg.ACLOperationDescribe, kmsg.ACLOperationDelete
	topic, group := kmsg.ACLResourceTypeTopic, kmsg.ACLResourceTypeGroup
	for _, c := range []struct {
		principal, host string
		op              Operation
		rt              ResourceType
		name            string
		want            bool
	}{
		{"User:admin", "1.2.3.4", del, topic, "anything", true}, // super user
		{"User:alice", "h", write, topic, "sensors.a", true},    // prefixed
		{"User:alice", "h", describe, topic, "sensors.a", true}, // WRITE implies DESCRIBE
		{"User:alice", "h", read, topic, "sensors.a", false},    // not granted
		{"User:alice", "h", read, topic, "sensors.raw", true},   // literal
		{"User:alice", "h", write, topic, "sensors.secret", false},
		{"User:alice", "h", write, topic, "other", false}, // no ACL: denied by default
		{"User:carol", "h", read, group, "g1", true},      // User:* and literal "*"
		{"User:bob", "10.0.0.1", del, topic, "logs", true},
		{"User:bob", "10.0.0.2", del, topic, "logs", false}, // host mismatch
	} {
		if got := a.Authorize(c.principal, c.host, c.op, c.rt, c.name); got != c.want {
			t.Errorf("%s from %s %s %s %q: got %v, want %v", c.principal, c.host, c.op, c.rt, c.name, got, c.want)
		}
	}
	open := NewAuthorizer(nil, true)
	if !open.Authorize("User:x", "h", write, topic, "t") {
		t.Error("allow.everyone.if.no.acl.found: no ACL should allow")
	}
	if !a.AuthorizeAny("User:alice", "h", write, topic) || a.AuthorizeAny("User:carol", "h", write, topic) {
		t.Error("AuthorizeAny: alice may write some topic, carol none")
	}
	name := "sensors."
	gone := a.Delete(Filter{ResourceType: topic, ResourceName: &name, PatternType: kmsg.ACLResourcePatternTypePrefixed,
		Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny})
	if len(gone) != 1 || a.Authorize("User:alice", "h", write, topic, "sensors.a") {
		t.Fatalf("delete prefixed: removed %v", gone)
	}
	match := "sensors.raw"
	if got := a.List(Filter{ResourceType: topic, ResourceName: &match,
		PatternType: kmsg.ACLResourcePatternTypeMatch, Operation: kmsg.ACLOperationAny, Permission: kmsg.ACLPermissionTypeAny}); len(got) != 1 {
		t.Fatalf("match filter: %v", got)
	}
}

func TestParseACLRejects(t *testing.T) {
	for _, s := range []string{"allow alice * read topic t", "allow User:a * read topic", "maybe User:a * read topic t",
		"allow User:a * fly topic t", "allow User:a * read table t", "allow User:a * read topic prefixed:*"} {
		if _, err := ParseACL(s); err == nil {
			t.Errorf("ParseACL(%q) accepted", s)
		}
	}
}

// TestScramWithXdgClient runs whole exchanges against xdg-go/scram's client
// (what Sarama uses) for both mechanisms, with right and wrong passwords.
func TestScramWithXdgClient(t *testing.T) {
	store := NewCredentials()
	for _, m := range Mechanisms {
		cred, err := NewCredential(m, "pencil", nil, 4096)
		if err != nil {
			t.Fatal(err)
		}
		store.Set("user", m, cred)
		for _, pw := range []string{"pencil", "pen"} {
			h, _ := m.hash()
			cl, _ := h.NewClient("user", pw, "")
			cc := cl.NewConversation()
			sc, err := store.NewScramConversation(m)
			if err != nil {
				t.Fatal(err)
			}
			msg, _ := cc.Step("")
			var done bool
			for i := 0; i < 2 && err == nil; i++ {
				var out []byte
				out, done, err = sc.Step([]byte(msg))
				if err == nil {
					msg, err = cc.Step(string(out))
				}
			}
			if ok := err == nil && done && cc.Valid(); ok != (pw == "pencil") {
				t.Errorf("%s with %q: ok=%v err=%v", m, pw, ok, err)
			}
		}
		if store.CheckPlain("user", "pencil") != nil || store.CheckPlain("user", "pen") == nil || store.CheckPlain("nobody", "x") == nil {
			t.Errorf("%s: PLAIN check wrong", m)
		}
	}
}

// TestScramLibrdkafkaNonce replays librdkafka's final message, whose nonce
// is the client nonce followed by the whole server nonce.
func TestScramLibrdkafkaNonce(t *testing.T) {
	store := NewCredentials()
	cred, _ := NewCredential(ScramSHA512, "secret", []byte("0123456789abcdef"), 4096)
	store.Set("alice", ScramSHA512, cred)
	for _, pw := range []string{"secret", "wrong"} {
		sc, _ := store.NewScramConversation(ScramSHA512)
		c1bare := "n=alice,r=cNONCE"
		s1, _, err := sc.Step([]byte("n,," + c1bare))
		if err != nil {
			t.Fatal(err)
		}
		snonce := attr(string(s1), "r")
		wo := "c=biws,r=cNONCE" + snonce
		salted, _ := pbkdf2.Key(sha512.New, pw, cred.Salt, 4096, 64)
		ck := mac(salted, "Client Key")
		sum := sha512.Sum512(ck)
		sig := mac(sum[:], c1bare+","+string(s1)+","+wo)
		for i := range ck {
			ck[i] ^= sig[i]
		}
		out, done, err := sc.Step([]byte(wo + ",p=" + base64.StdEncoding.EncodeToString(ck)))
		if ok := err == nil && done && strings.HasPrefix(string(out), "v="); ok != (pw == "secret") {
			t.Errorf("password %q: ok=%v err=%v", pw, ok, err)
		}
	}
}

func mac(key []byte, msg string) []byte {
	h := hmac.New(sha512.New, key)
	h.Write([]byte(msg))
	return h.Sum(nil)
}

func TestCredentialFromSalted(t *testing.T) {
	salt := []byte("salty")
	want, _ := NewCredential(ScramSHA512, "pw", salt, 4096)
	salted, _ := pbkdf2.Key(sha512.New, "pw", salt, 4096, 64)
	got, err := CredentialFromSalted(ScramSHA512, salt, salted, 4096)
	if err != nil || !hmac.Equal(got.StoredKey, want.StoredKey) || !hmac.Equal(got.ServerKey, want.ServerKey) {
		t.Fatalf("derived keys differ: %v", err)
	}
	if _, err := NewCredential(ScramSHA256, "pw", nil, 1000); err == nil {
		t.Fatal("1000 iterations accepted")
	}
}
