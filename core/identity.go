package core

import "fmt"

// Identity is who a session belongs to: the user name its client
// authenticated with and, when the client presented a verified
// certificate, that certificate's subject. Two connections are the same
// identity when both match; an anonymous client's identity is empty, the
// same for every anonymous client.
type Identity struct {
	Username    string
	CertSubject string
}

// identityOf is the identity of an authenticated connection.
func identityOf(cl *ClientInfo) Identity {
	id := Identity{Username: cl.Username}
	if cl.TLS != nil && len(cl.TLS.VerifiedChains) > 0 && len(cl.TLS.PeerCertificates) > 0 {
		id.CertSubject = cl.TLS.PeerCertificates[0].Subject.String()
	}
	return id
}

// String describes the identity for logs.
func (id Identity) String() string {
	switch {
	case id.Username == "" && id.CertSubject == "":
		return "anonymous"
	case id.CertSubject == "":
		return fmt.Sprintf("user %q", id.Username)
	case id.Username == "":
		return fmt.Sprintf("certificate %q", id.CertSubject)
	}
	return fmt.Sprintf("user %q with certificate %q", id.Username, id.CertSubject)
}

// ForeignSessionPolicy is what the server does with a CONNECT for a
// session another identity owns (Options.ForeignSession).
type ForeignSessionPolicy uint8

// The policies.
const (
	// ForeignSessionDiscard discards the other identity's session (taking
	// over its live connection, if any, as any CONNECT with its client
	// identifier does [MQTT-3.1.4-3]) and starts a clean one.
	ForeignSessionDiscard ForeignSessionPolicy = iota
	// ForeignSessionRefuse refuses the CONNECT with Not authorized.
	ForeignSessionRefuse
)

// String names the policy as the config file writes it.
func (p ForeignSessionPolicy) String() string {
	switch p {
	case ForeignSessionDiscard:
		return "discard"
	case ForeignSessionRefuse:
		return "refuse"
	}
	return "unknown"
}

// ParseForeignSessionPolicy parses "discard" or "refuse".
func ParseForeignSessionPolicy(s string) (ForeignSessionPolicy, error) {
	switch s {
	case "discard":
		return ForeignSessionDiscard, nil
	case "refuse":
		return ForeignSessionRefuse, nil
	}
	return 0, fmt.Errorf("%q: want discard or refuse", s)
}

// foreignLocked reports whether sess belongs to an identity other than
// id's. A session restored from a store that did not record its owner
// (ownerKnown false) belongs to whoever resumes it first. The caller holds
// sess.mu.
func (sess *session) foreignLocked(id Identity) bool {
	return sess.ownerKnown && sess.owner != id
}

// logForeign logs what happened to a CONNECT for another identity's
// session.
func (c *client) logForeign(owner Identity, action string) {
	c.logger().Warn("client identifier in use by another identity's session: "+action,
		"identity", identityOf(&c.info).String(), "owner", owner.String())
}
