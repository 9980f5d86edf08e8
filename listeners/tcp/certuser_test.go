package tcp

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/mqtttest"
	"github.com/vanemq/vanemq/listeners/tlsfiles"
	"github.com/vanemq/vanemq/listeners/tlsfiles/tlstest"
)

// userHook records the username the Connect decision sees and says Next.
type userHook struct {
	names chan string
}

func (h *userHook) ID() string            { return "test.user" }
func (h *userHook) Events() core.EventSet { return core.Events(core.EventConnect) }
func (h *userHook) Connect(_ context.Context, cl *core.ClientInfo, _ *core.ClientPolicy) core.Verdict {
	h.names <- cl.Username
	return core.Next
}

// With WithCertUsername, a client with a verified certificate connects to a
// broker that refuses anonymous clients, and its username is the
// certificate's Common Name, whatever CONNECT said.
func TestCertUsername(t *testing.T) {
	pki := tlstest.New(t)
	cfg, err := tlsfiles.Load(tlsfiles.Files{Cert: pki.ServerCert, Key: pki.ServerKey, ClientCA: pki.CAFile, RequireClientCert: true})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := core.New(core.Options{SysInterval: -1, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hook := &userHook{names: make(chan string, 4)}
	if err := srv.AddHook(hook, 0); err != nil {
		t.Fatal(err)
	}
	addr := mqtttest.Serve(t, srv, NewTLS("tls", "127.0.0.1:0", cfg.TLSConfig()).WithCertUsername())

	c, err := dialV3(t, addr, pki.ClientConfig(true), "cert-client")
	if err != nil {
		t.Fatalf("a client with a verified certificate was refused although its identity is its certificate: %v", err)
	}
	select {
	case name := <-hook.names:
		if name != tlstest.ClientCN {
			t.Errorf("username %q, want the certificate's Common Name %q", name, tlstest.ClientCN)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the Connect hook was not called")
	}
	c.roundTrip(t, "cert/t")
}
