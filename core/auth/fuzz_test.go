package auth

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzParsePlain: any token parses or errors, never panics, and a parsed
// one has a non-empty user and password.
func FuzzParsePlain(f *testing.F) {
	f.Add([]byte("\x00alice\x00secret"))
	f.Add([]byte("alice\x00alice\x00secret"))
	f.Add([]byte("\x00\x00"))
	f.Fuzz(func(t *testing.T, tok []byte) {
		u, p, err := ParsePlain(tok)
		if err == nil && (u == "" || p == "") {
			t.Fatalf("accepted empty user or password from %q", tok)
		}
	})
}

// FuzzScramServer feeds arbitrary client messages to a server conversation:
// no panic, and no success without the password's proof.
func FuzzScramServer(f *testing.F) {
	store := NewCredentials()
	cred, _ := NewCredential(ScramSHA256, "pw", []byte("salt"), 4096)
	store.Set("alice", ScramSHA256, cred)
	f.Add([]byte("n,,n=alice,r=abc"), []byte("c=biws,r=abc,p=AAAA"))
	f.Add([]byte("n,a=bob,n=alice,r=x"), []byte("c=biws,r=xx,p="))
	f.Add([]byte("y,,n=al=2Cice,r=x"), []byte(""))
	f.Fuzz(func(t *testing.T, c1, c2 []byte) {
		sc, err := store.NewScramConversation(ScramSHA256)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := sc.Step(c1); err != nil {
			return
		}
		if _, done, err := sc.Step(c2); done || (err == nil && done) {
			t.Fatalf("exchange succeeded without the password: %q %q", c1, c2)
		}
	})
}

// FuzzAuthorize checks the matcher's invariants on arbitrary bindings and
// requests: super users always pass; an exact deny always wins; with no
// binding the default decides.
func FuzzAuthorize(f *testing.F) {
	f.Add("sensors.", true, "sensors.a", uint8(3), "User:alice", "*")
	f.Add("*", false, "x", uint8(4), "User:*", "10.0.0.1")
	f.Fuzz(func(t *testing.T, pattern string, prefixed bool, name string, op uint8, principal, host string) {
		pt := kmsg.ACLResourcePatternTypeLiteral
		if prefixed {
			pt = kmsg.ACLResourcePatternTypePrefixed
		}
		o := kmsg.ACLOperation(2 + op%12)
		acl := ACL{ResourceType: kmsg.ACLResourceTypeTopic, ResourceName: pattern, PatternType: pt,
			Principal: principal, Host: host, Operation: o, Permission: kmsg.ACLPermissionTypeAllow}
		if acl.Validate() != nil {
			return
		}
		a := NewAuthorizer([]string{"User:root"}, false)
		if a.Authorize("User:x", "h", o, kmsg.ACLResourceTypeTopic, name) {
			t.Fatal("allowed with no bindings and the default off")
		}
		a.Add(acl)
		if !a.Authorize("User:root", "h", o, kmsg.ACLResourceTypeTopic, name) {
			t.Fatal("super user refused")
		}
		allowed := a.Authorize(principal, host, o, kmsg.ACLResourceTypeTopic, name)
		if allowed != patternMatches(acl, name) {
			t.Fatalf("allow %v on %q: got %v", acl, name, allowed)
		}
		deny := acl
		deny.Permission = kmsg.ACLPermissionTypeDeny
		a.Add(deny)
		if a.Authorize(principal, host, o, kmsg.ACLResourceTypeTopic, name) {
			t.Fatalf("deny %v did not win for %q", deny, name)
		}
	})
}
