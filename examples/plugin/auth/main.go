// Command vanemq-auth is a vanemq plugin that authenticates clients
// against a file of user names and bcrypt password hashes: a known user
// with the right password is allowed in, anyone else is refused with
// CONNACK 0x86 (Bad User Name or Password; 0x04 for MQTT 3.1.1).
//
// The broker runs it as a separate process (hook "plugin", see
// docs/plugins.md). Its config block:
//
//	config:
//	  users: examples/plugin/auth/users.json   # or a .csv file
//
// A relative path is relative to the broker's working directory: the
// broker passes the block as it is, and the plugin runs in the broker's
// working directory. The file is read when the plugin starts (and again
// whenever the broker restarts it). See README.md.
//
// Build: go build -o bin/vanemq-auth ./examples/plugin/auth
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"path/filepath"
	"sync/atomic"

	"golang.org/x/crypto/bcrypt"

	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/plugins/sdk"
)

// maxPasswordLen is the longest password bcrypt hashes: it ignores the
// bytes after the 72nd, so longer passwords are refused rather than cut.
const maxPasswordLen = 72

// config is the plugin's config block.
type config struct {
	// Users is the users file: JSON, or CSV when its name ends in .csv.
	Users string `json:"users"`
}

// state is what Init loads; decisions read it through an atomic pointer.
type state struct {
	users map[string][]byte // user name → bcrypt hash
	// dummy is the hash of a random password at the users' commonest
	// cost: an unknown user's password is checked against it, so that
	// the answer takes as long as for a known user with a wrong password
	// and its timing does not tell which user names exist.
	dummy []byte
	log   *slog.Logger
}

// authPlugin is the plugin. sdk.Base answers "no opinion" for every
// event it does not override.
type authPlugin struct {
	sdk.Base
	state atomic.Pointer[state]
}

// Init reads the config block and the users file, and says that the
// plugin decides one event: authentication.
func (p *authPlugin) Init(_ context.Context, req sdk.InitRequest) (sdk.Description, error) {
	var cfg config
	if err := req.Decode(&cfg); err != nil {
		return sdk.Description{}, err
	}
	if cfg.Users == "" {
		return sdk.Description{}, errors.New(`users: required: the users file (JSON, or CSV when it ends in ".csv")`)
	}
	// Absolute, so that errors and the log say which file it is.
	path, err := filepath.Abs(cfg.Users)
	if err != nil {
		return sdk.Description{}, err
	}
	users, cost, err := loadUsers(path)
	if err != nil {
		return sdk.Description{}, err
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte(rand.Text()), cost)
	if err != nil {
		return sdk.Description{}, err
	}
	// sdk.Logger's lines reach the broker's log, with plugin=auth.
	log := sdk.Logger()
	log.Info("users loaded", "file", path, "users", len(users))
	p.state.Store(&state{users: users, dummy: dummy, log: log})
	return sdk.Description{Name: "auth", Handlers: []sdk.Handler{
		{Event: sdk.EventAuthenticate, Mode: sdk.ModeDecision},
	}}, nil
}

// badCredentials is the verdict for a missing or unknown user name or a
// wrong password: the client is not told which.
var badCredentials = sdk.Deny(packets.BadUsernameOrPassword, "bad user name or password")

// Authenticate allows a known user with the right password and refuses
// everyone else, clients without a user name included. Passwords are
// never logged.
func (p *authPlugin) Authenticate(_ context.Context, c *sdk.Client, cred *sdk.Credentials) sdk.Verdict {
	st := p.state.Load()
	hash, known := st.users[cred.Username]
	switch {
	case len(cred.Password) > maxPasswordLen:
		st.log.Debug("refused: password longer than 72 bytes", "client", c.ID, "username", cred.Username)
		return badCredentials
	case !known:
		_ = bcrypt.CompareHashAndPassword(st.dummy, cred.Password) // as slow as a wrong password
		st.log.Debug("refused: unknown user", "client", c.ID, "username", cred.Username)
		return badCredentials
	case bcrypt.CompareHashAndPassword(hash, cred.Password) != nil:
		st.log.Debug("refused: wrong password", "client", c.ID, "username", cred.Username)
		return badCredentials
	}
	return sdk.Allow
}

func main() { sdk.Serve(&authPlugin{}) }
