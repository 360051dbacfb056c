package auth

import (
	"fmt"
	"strings"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Kafka's enums, re-exported so callers need not import kmsg for them.
type (
	ResourceType = kmsg.ACLResourceType
	PatternType  = kmsg.ACLResourcePatternType
	Operation    = kmsg.ACLOperation
	Permission   = kmsg.ACLPermissionType
)

// Anonymous is the principal of a connection that did not authenticate.
const Anonymous = "User:ANONYMOUS"

// ACL is one binding: Principal may (Permission allow) or may not (deny)
// perform Operation on the resources ResourceName matches, from Host ("*"
// for any).
type ACL struct {
	ResourceType ResourceType `json:"resource_type"`
	ResourceName string       `json:"resource_name"`
	PatternType  PatternType  `json:"pattern_type"`
	Principal    string       `json:"principal"`
	Host         string       `json:"host"`
	Operation    Operation    `json:"operation"`
	Permission   Permission   `json:"permission"`
}

func (a ACL) String() string {
	return fmt.Sprintf("%s %s from %s: %s on %s %s:%q", a.Permission, a.Principal, a.Host, a.Operation,
		a.ResourceType, a.PatternType, a.ResourceName)
}

// Validate reports a binding that cannot be stored: the "any"/"match"
// wildcards of filters are not allowed in a binding.
func (a ACL) Validate() error {
	switch a.ResourceType {
	case kmsg.ACLResourceTypeTopic, kmsg.ACLResourceTypeGroup, kmsg.ACLResourceTypeCluster,
		kmsg.ACLResourceTypeTransactionalId:
	default:
		return fmt.Errorf("resource type %s cannot be bound", a.ResourceType)
	}
	switch a.PatternType {
	case kmsg.ACLResourcePatternTypeLiteral, kmsg.ACLResourcePatternTypePrefixed:
	default:
		return fmt.Errorf("pattern type %s cannot be bound", a.PatternType)
	}
	if a.ResourceName == "" {
		return fmt.Errorf("empty resource name")
	}
	if a.PatternType == kmsg.ACLResourcePatternTypePrefixed && a.ResourceName == "*" {
		return fmt.Errorf("prefixed pattern %q: use a literal \"*\"", a.ResourceName)
	}
	if !strings.HasPrefix(a.Principal, "User:") || len(a.Principal) == len("User:") {
		return fmt.Errorf("principal %q: want User:<name>", a.Principal)
	}
	if a.Host == "" {
		return fmt.Errorf("empty host (use \"*\" for any)")
	}
	if a.Operation <= kmsg.ACLOperationAny || a.Operation > kmsg.ACLOperationCreateTokens {
		return fmt.Errorf("operation %s cannot be bound", a.Operation)
	}
	if a.Permission != kmsg.ACLPermissionTypeAllow && a.Permission != kmsg.ACLPermissionTypeDeny {
		return fmt.Errorf("permission %s cannot be bound", a.Permission)
	}
	return nil
}

// Filter selects bindings for DescribeAcls and DeleteAcls: zero-value
// strings and the "any" enums match everything; PatternType "match" selects
// every binding that would apply to ResourceName.
type Filter struct {
	ResourceType ResourceType
	ResourceName *string
	PatternType  PatternType
	Principal    *string
	Host         *string
	Operation    Operation
	Permission   Permission
}

// Matches reports whether the filter selects a.
func (f Filter) Matches(a ACL) bool {
	if f.ResourceType != kmsg.ACLResourceTypeAny && f.ResourceType != a.ResourceType {
		return false
	}
	switch f.PatternType {
	case kmsg.ACLResourcePatternTypeAny:
		if f.ResourceName != nil && *f.ResourceName != a.ResourceName {
			return false
		}
	case kmsg.ACLResourcePatternTypeMatch:
		if f.ResourceName != nil && !patternMatches(a, *f.ResourceName) {
			return false
		}
	default:
		if f.PatternType != a.PatternType || (f.ResourceName != nil && *f.ResourceName != a.ResourceName) {
			return false
		}
	}
	if f.Principal != nil && *f.Principal != a.Principal {
		return false
	}
	if f.Host != nil && *f.Host != a.Host {
		return false
	}
	if f.Operation != kmsg.ACLOperationAny && f.Operation != a.Operation {
		return false
	}
	if f.Permission != kmsg.ACLPermissionTypeAny && f.Permission != a.Permission {
		return false
	}
	return true
}

// patternMatches reports whether a's resource pattern covers name.
func patternMatches(a ACL, name string) bool {
	switch a.PatternType {
	case kmsg.ACLResourcePatternTypeLiteral:
		return a.ResourceName == "*" || a.ResourceName == name
	case kmsg.ACLResourcePatternTypePrefixed:
		return strings.HasPrefix(name, a.ResourceName)
	}
	return false
}

// Authorizer decides requests from a set of bindings. The zero value is not
// usable; build it with NewAuthorizer.
type Authorizer struct {
	superUsers   map[string]bool
	allowIfNoACL bool

	mu   sync.RWMutex
	acls []ACL
}

// NewAuthorizer builds an authorizer with the given super users (principals
// allowed everything) and the allow.everyone.if.no.acl.found setting.
func NewAuthorizer(superUsers []string, allowIfNoACL bool) *Authorizer {
	a := &Authorizer{superUsers: map[string]bool{}, allowIfNoACL: allowIfNoACL}
	for _, u := range superUsers {
		a.superUsers[u] = true
	}
	return a
}

// Set replaces every binding (replaying replicated or stored state).
func (a *Authorizer) Set(acls []ACL) {
	a.mu.Lock()
	a.acls = append([]ACL(nil), acls...)
	a.mu.Unlock()
}

// Add stores bindings, skipping exact duplicates as Kafka does.
func (a *Authorizer) Add(acls ...ACL) {
	a.mu.Lock()
	defer a.mu.Unlock()
next:
	for _, n := range acls {
		for _, e := range a.acls {
			if e == n {
				continue next
			}
		}
		a.acls = append(a.acls, n)
	}
}

// Delete removes and returns every binding the filter selects.
func (a *Authorizer) Delete(f Filter) []ACL {
	a.mu.Lock()
	defer a.mu.Unlock()
	var gone []ACL
	kept := a.acls[:0]
	for _, e := range a.acls {
		if f.Matches(e) {
			gone = append(gone, e)
		} else {
			kept = append(kept, e)
		}
	}
	a.acls = kept
	return gone
}

// List returns the bindings the filter selects.
func (a *Authorizer) List(f Filter) []ACL {
	a.mu.RLock()
	defer a.mu.RUnlock()
	var out []ACL
	for _, e := range a.acls {
		if f.Matches(e) {
			out = append(out, e)
		}
	}
	return out
}

// All returns every binding.
func (a *Authorizer) All() []ACL {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return append([]ACL(nil), a.acls...)
}

// IsSuperUser reports whether principal bypasses ACLs.
func (a *Authorizer) IsSuperUser(principal string) bool { return a.superUsers[principal] }

// Authorize decides whether principal, connected from host, may perform op
// on the named resource, with Kafka's rules: super users may do anything;
// with no binding on the resource the answer is allowIfNoACL; a matching
// deny wins over any allow; an allow of ALL, or of an operation that
// implies op (READ, WRITE, DELETE and ALTER imply DESCRIBE; ALTER_CONFIGS
// implies DESCRIBE_CONFIGS), grants it.
func (a *Authorizer) Authorize(principal, host string, op Operation, rt ResourceType, name string) bool {
	if a.superUsers[principal] {
		return true
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	found, allowed := false, false
	for _, e := range a.acls {
		if e.ResourceType != rt || !patternMatches(e, name) {
			continue
		}
		found = true
		if e.Principal != principal && e.Principal != "User:*" {
			continue
		}
		if e.Host != "*" && e.Host != host {
			continue
		}
		switch e.Permission {
		case kmsg.ACLPermissionTypeDeny:
			if e.Operation == op || e.Operation == kmsg.ACLOperationAll {
				return false
			}
		case kmsg.ACLPermissionTypeAllow:
			if e.Operation == op || e.Operation == kmsg.ACLOperationAll || implies(e.Operation, op) {
				allowed = true
			}
		}
	}
	if !found {
		return a.allowIfNoACL
	}
	return allowed
}

// implies reports whether an allow of have also allows want.
func implies(have, want Operation) bool {
	switch want {
	case kmsg.ACLOperationDescribe:
		switch have {
		case kmsg.ACLOperationRead, kmsg.ACLOperationWrite, kmsg.ACLOperationDelete, kmsg.ACLOperationAlter:
			return true
		}
	case kmsg.ACLOperationDescribeConfigs:
		return have == kmsg.ACLOperationAlterConfigs
	}
	return false
}

// ParseACL reads a binding in the config-file form
// "allow User:alice * read topic prefixed:sensors" (permission, principal,
// host, operation, resource type, [literal:|prefixed:]name).
func ParseACL(s string) (ACL, error) {
	f := strings.Fields(s)
	if len(f) != 6 {
		return ACL{}, fmt.Errorf("acl %q: want \"allow|deny User:<name> <host> <operation> <resource-type> [prefixed:]<name>\"", s)
	}
	var a ACL
	var err error
	if a.Permission, err = kmsg.ParseACLPermissionType(f[0]); err != nil {
		return ACL{}, fmt.Errorf("acl %q: permission: %w", s, err)
	}
	a.Principal, a.Host = f[1], f[2]
	if a.Operation, err = kmsg.ParseACLOperation(strings.ReplaceAll(f[3], "-", "_")); err != nil {
		return ACL{}, fmt.Errorf("acl %q: operation: %w", s, err)
	}
	if a.ResourceType, err = kmsg.ParseACLResourceType(strings.ReplaceAll(f[4], "-", "_")); err != nil {
		return ACL{}, fmt.Errorf("acl %q: resource type: %w", s, err)
	}
	a.PatternType, a.ResourceName = kmsg.ACLResourcePatternTypeLiteral, f[5]
	if rest, ok := strings.CutPrefix(f[5], "prefixed:"); ok {
		a.PatternType, a.ResourceName = kmsg.ACLResourcePatternTypePrefixed, rest
	} else if rest, ok := strings.CutPrefix(f[5], "literal:"); ok {
		a.ResourceName = rest
	}
	if err := a.Validate(); err != nil {
		return ACL{}, fmt.Errorf("acl %q: %w", s, err)
	}
	return a, nil
}

// AuthorizeAny reports whether principal is allowed op on some resource of
// type rt (Kafka's authorizeByResourceType, used for idempotent producers):
// a super user, or an allow binding of op or ALL that no deny of the same
// pattern cancels.
func (a *Authorizer) AuthorizeAny(principal, host string, op Operation, rt ResourceType) bool {
	if a.superUsers[principal] {
		return true
	}
	a.mu.RLock()
	defer a.mu.RUnlock()
	applies := func(e ACL) bool {
		return e.ResourceType == rt && (e.Principal == principal || e.Principal == "User:*") &&
			(e.Host == "*" || e.Host == host) && (e.Operation == op || e.Operation == kmsg.ACLOperationAll)
	}
	for _, e := range a.acls {
		if !applies(e) || e.Permission != kmsg.ACLPermissionTypeAllow {
			continue
		}
		denied := false
		for _, d := range a.acls {
			if applies(d) && d.Permission == kmsg.ACLPermissionTypeDeny && d.PatternType == e.PatternType &&
				(d.ResourceName == "*" || d.ResourceName == e.ResourceName ||
					(d.PatternType == kmsg.ACLResourcePatternTypePrefixed && strings.HasPrefix(e.ResourceName, d.ResourceName))) {
				denied = true
				break
			}
		}
		if !denied {
			return true
		}
	}
	return a.allowIfNoACL
}
