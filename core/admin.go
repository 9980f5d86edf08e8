package core

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/vanemq/vanemq/core/packets"
)

// ErrNoClient is returned for a client ID with no connection.
var ErrNoClient = errors.New("core: no such client connected")

// Disconnect closes the connection of clientID: MQTT 5 clients get a
// DISCONNECT with code (0: 0x98 Administrative action) and reason; the
// session stays as its expiry says, and the will is published as after a
// network failure.
func (s *Server) Disconnect(clientID string, code packets.ReasonCode, reason string) error {
	if code == 0 {
		code = packets.AdministrativeAction
	}
	if code < 0x80 {
		return fmt.Errorf("core: disconnect %s: reason code %s is not an error code", clientID, code)
	}
	v, ok := s.live.Load(clientID)
	if !ok {
		return fmt.Errorf("%w: %s", ErrNoClient, clientID)
	}
	sess := v.(*session)
	sess.mu.Lock()
	c := sess.conn
	sess.mu.Unlock()
	if c == nil {
		return fmt.Errorf("%w: %s", ErrNoClient, clientID)
	}
	if c.logs(slog.LevelInfo) {
		c.logger().Info("disconnecting client on request", "reason", code.String(), "cause", reason)
	}
	c.kick(code, reason)
	return nil
}

// Health reports the hooks that are not healthy, joined; nil when all are
// (the admin listener's /readyz answers 503 with it).
func (s *Server) Health() error {
	var msgs []string
	for _, e := range s.hooks.snapshot() {
		if hc, ok := e.hook.(HealthChecker); ok {
			if err := hc.Health(); err != nil {
				msgs = append(msgs, "hook "+e.id+": "+err.Error())
			}
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
}

// BridgeStatus describes one bridge to another broker, for operators: its
// state, and its counts since the broker started.
type BridgeStatus struct {
	Name      string `json:"name"`
	Remote    string `json:"remote"`
	Connected bool   `json:"connected"`
	// Queued counts messages waiting to go out (inflight to the remote
	// included); Sent and Received count messages forwarded out and in.
	Queued   int    `json:"queued"`
	Sent     uint64 `json:"sent"`
	Received uint64 `json:"received"`
	// Dropped counts outgoing messages dropped for a full queue.
	Dropped uint64 `json:"dropped"`
}

// Bridges describes the bridges of every hook that runs some, by name.
func (s *Server) Bridges() []BridgeStatus {
	var out []BridgeStatus
	for _, e := range s.hooks.snapshot() {
		if br, ok := e.hook.(BridgeReporter); ok {
			out = append(out, br.Bridges()...)
		}
	}
	slices.SortFunc(out, func(a, b BridgeStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}
