package server

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/tributary-io/tributary/core/auth"
)

// DescribeUserScramCredentials (50) and AlterUserScramCredentials (51):
// describing needs DESCRIBE on the cluster, altering ALTER. Only the
// mechanism and iteration count are ever shown; upserts carry a salted
// password, from which the stored keys are derived.
func init() {
	register(50, 0, 0, (*Server).handleDescribeUserScram)
	register(51, 0, 0, (*Server).handleAlterUserScram)
}

func (s *Server) handleDescribeUserScram(_ context.Context, c *call,
	req *kmsg.DescribeUserSCRAMCredentialsRequest, resp *kmsg.DescribeUserSCRAMCredentialsResponse) (kmsg.Response, error) {
	if s.authzActive() && !s.allowed(c, opDescribe, rtCluster, clusterName) {
		resp.ErrorCode = codeClusterDenied
		c.fail(resp.ErrorCode)
		return resp, nil
	}
	users := s.sec.creds.Users()
	var names []string
	if req.Users == nil {
		for u := range users {
			names = append(names, u)
		}
	} else {
		for _, u := range req.Users {
			names = append(names, u.Name)
		}
	}
	for _, u := range names {
		r := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		r.User = u
		ms, ok := users[u]
		if !ok {
			r.ErrorCode, r.ErrorMessage = kerr.ResourceNotFound.Code, strp("no SCRAM credentials for "+u)
		}
		for _, m := range ms {
			cred, _ := s.sec.creds.Get(u, m)
			ci := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
			ci.Mechanism, ci.Iterations = m.Code(), int32(cred.Iterations)
			r.CredentialInfos = append(r.CredentialInfos, ci)
		}
		resp.Results = append(resp.Results, r)
	}
	return resp, nil
}

func (s *Server) handleAlterUserScram(_ context.Context, c *call,
	req *kmsg.AlterUserSCRAMCredentialsRequest, resp *kmsg.AlterUserSCRAMCredentialsResponse) (kmsg.Response, error) {
	// A change and its save are one step, so a replicated update applied
	// meanwhile (syncSecurity) can neither undo nor overtake it.
	s.secMu.Lock()
	defer s.secMu.Unlock()
	denied := s.authzActive() && !s.allowed(c, opAlter, rtCluster, clusterName)
	result := func(user string, code int16, msg string) {
		r := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
		r.User, r.ErrorCode = user, code
		if msg != "" {
			r.ErrorMessage = strp(msg)
		}
		c.fail(code)
		resp.Results = append(resp.Results, r)
	}
	changed := false
	for _, d := range req.Deletions {
		m, ok := auth.ParseMechanism(d.Mechanism)
		switch {
		case denied:
			result(d.Name, codeClusterDenied, "")
		case !ok:
			result(d.Name, kerr.UnsupportedSaslMechanism.Code, "unknown SCRAM mechanism")
		case !s.sec.creds.Delete(d.Name, m):
			result(d.Name, kerr.ResourceNotFound.Code, "no such credential")
		default:
			changed = true
			result(d.Name, 0, "")
		}
	}
	for _, u := range req.Upsertions {
		m, ok := auth.ParseMechanism(u.Mechanism)
		if denied {
			result(u.Name, codeClusterDenied, "")
			continue
		}
		if !ok {
			result(u.Name, kerr.UnsupportedSaslMechanism.Code, "unknown SCRAM mechanism")
			continue
		}
		cred, err := auth.CredentialFromSalted(m, u.Salt, u.SaltedPassword, int(u.Iterations))
		if err != nil {
			result(u.Name, kerr.UnacceptableCredential.Code, err.Error())
			continue
		}
		s.sec.creds.Set(u.Name, m, cred)
		changed = true
		result(u.Name, 0, "")
	}
	if changed {
		if err := s.saveSecurityStateLocked(); err != nil {
			s.logger.Error("SCRAM credentials changed but not stored", "err", err)
		}
	}
	return resp, nil
}
