package core

import (
	"context"
	"errors"

	"github.com/vanemq/vanemq/core/packets"
)

// Server is an MQTT broker: it owns the sessions, the subscription trie and
// the retained messages, and serves clients from its listeners.
type Server struct {
	opts Options
}

// New returns a server with the given options; zero fields take defaults.
func New(opts Options) (*Server, error) {
	opts.fill()
	return &Server{opts: opts}, nil
}

// AddListener binds l and registers it; it starts accepting on Start.
func (s *Server) AddListener(l Listener) error { return errors.New("not implemented") }

// Start begins serving on every listener and starts the background loops
// ($SYS, expiry). It returns at once; ctx bounds the server's lifetime.
func (s *Server) Start(ctx context.Context) error { return errors.New("not implemented") }

// Shutdown stops the listeners, sends DISCONNECT 0x8B (Server shutting down)
// to v5 clients, closes every connection and waits for the server's
// goroutines to end, or for ctx to be done.
func (s *Server) Shutdown(ctx context.Context) error { return errors.New("not implemented") }

// InlineMessage is a message published or received by in-process Go code.
type InlineMessage struct {
	Topic      string
	Payload    []byte
	QoS        byte
	Retain     bool
	Properties packets.Properties
}

// Publish publishes m from inside the process, as if from a client with no
// subscriptions of its own. Retained messages are stored as usual.
func (s *Server) Publish(m InlineMessage) error { return errors.New("not implemented") }

// Subscribe delivers every message matching filter to handler, called on a
// goroutine of the server's; the returned function unsubscribes.
func (s *Server) Subscribe(filter string, handler func(InlineMessage)) (func(), error) {
	return nil, errors.New("not implemented")
}
