package auth

import (
	"bytes"
	"sync"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
)

// liveUsers are the connections a File hook authenticated, with the user
// name each logged in as, from Authenticate to OnDisconnected. They are
// keyed by the server's ClientInfo of the connection, which is one per
// connection: a takeover's new connection is another key.
type liveUsers struct {
	mu sync.Mutex
	m  map[*core.ClientInfo]string
}

func (l *liveUsers) add(cl *core.ClientInfo, username string) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[*core.ClientInfo]string)
	}
	l.m[cl] = username
	l.mu.Unlock()
}

func (l *liveUsers) remove(cl *core.ClientInfo) {
	l.mu.Lock()
	delete(l.m, cl)
	l.mu.Unlock()
}

// revocation is one connection to close, and why.
type revocation struct {
	clientID, username, cause string
}

// revoked lists the connections whose user is gone from users, whose
// password hash differs from the one in prev, or whose client ID the
// user's client_ids no longer allow.
func (l *liveUsers) revoked(prev, users *Users) []revocation {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []revocation
	for cl, name := range l.m {
		hash, ok := users.hashes[name]
		switch {
		case !ok:
			out = append(out, revocation{cl.ID, name, "the user was removed from the users file"})
		case !bytes.Equal(hash, prev.hashes[name]):
			out = append(out, revocation{cl.ID, name, "the user's password was changed"})
		case !users.AllowsClientID(name, cl.ID):
			out = append(out, revocation{cl.ID, name, "the user may no longer use this client ID (client_ids)"})
		}
	}
	return out
}

// revoke makes a reload from prev to users take effect on live sessions
// (FileOptions.Server): the server re-checks what each session may read,
// and the connections of removed users, of users whose password changed,
// or with a client ID their user may no longer use, are closed with Not
// authorized (0x87).
func (f *File) revoke(prev, users *Users) {
	srv := f.opts.Server
	if srv == nil {
		return
	}
	for _, r := range f.live.revoked(prev, users) {
		f.log.Info("auth.file: disconnecting a client after the reload: "+r.cause,
			"client", r.clientID, "username", r.username, "file", f.opts.Users)
		if err := srv.Disconnect(r.clientID, packets.NotAuthorized, r.cause); err != nil {
			f.log.Debug("auth.file: client already gone", "client", r.clientID, "cause", err)
		}
	}
	if f.opts.ACL != "" {
		srv.InvalidateAuthorization()
	}
}
