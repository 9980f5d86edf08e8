package auth

import (
	"context"

	"github.com/vanemq/vanemq/core"
)

// AllowID is the ID of the allow-all hook.
const AllowID = "auth.allow"

func init() {
	// The config block, if any, must be empty.
	core.RegisterHookModule(core.Module(AllowID, struct{}{}, func(core.HookConfig, struct{}) (core.Hook, error) {
		return NewAllow(), nil
	}))
}

// Allow is the auth.allow hook: it authenticates every client, whatever
// its credentials. It makes "anyone may connect" explicit in a config
// (instead of allow_anonymous: true, which only admits clients no hook
// refused) and is placed below hooks that should have the first say.
// It does not authorize publishes or subscriptions: without an ACL hook
// they are allowed anyway.
type Allow struct{}

var (
	_ core.Hook             = (*Allow)(nil)
	_ core.AuthenticateHook = (*Allow)(nil)
)

// NewAllow returns an auth.allow hook.
func NewAllow() *Allow { return &Allow{} }

// ID implements core.Hook.
func (*Allow) ID() string { return AllowID }

// Authenticate implements core.AuthenticateHook: every client is allowed.
func (*Allow) Authenticate(context.Context, *core.ClientInfo, *core.Credentials) core.Verdict {
	return core.Allow
}
