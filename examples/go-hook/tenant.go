package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/core/packets"
	"github.com/vanemq/vanemq/core/topics"
)

// TenantID is the ID of the tenant.prefix hook: the name vanemq.yaml uses.
const TenantID = "tenant.prefix"

// init registers the module, so that a config file linked into this binary
// can name it, like the built-in auth.file. core.Module decodes the hook's
// config block into a tenantConfig, starting from these defaults, which
// the keys the block does not set keep.
func init() {
	core.RegisterHookModule(core.Module(TenantID, tenantConfig{Prefix: "tenants/", MaxPayload: 1024}, newTenantModule))
}

// tenantConfig is tenant.prefix's config block.
type tenantConfig struct {
	// Prefix comes before the username in the mountpoint. Default
	// "tenants/".
	Prefix string `yaml:"prefix"`
	// MaxPayload is the largest payload, in bytes, a client may publish;
	// 0 means no limit. Default 1024.
	MaxPayload int `yaml:"max_payload"`
}

// newTenantModule makes the hook from its decoded config block.
func newTenantModule(hc core.HookConfig, c tenantConfig) (core.Hook, error) {
	t, err := NewTenant(c.Prefix, c.MaxPayload)
	if err != nil {
		return nil, err
	}
	hc.Logger.Info("tenants isolated", "prefix", c.Prefix, "max_payload", c.MaxPayload)
	return t, nil
}

// Tenant is the tenant.prefix hook. It gives every client a topic space of
// its own, PREFIX + username + "/", through the per-client policy's
// mountpoint: the client publishes and subscribes to "x" and the broker
// routes "tenants/alice/x", so tenants never see each other's messages.
// It also refuses payloads larger than a limit.
type Tenant struct {
	prefix     string
	maxPayload int
}

// The events Tenant handles: the pipeline finds them by these interfaces,
// and the guards make a misspelt method a build error.
var (
	_ core.Hook        = (*Tenant)(nil)
	_ core.ConnectHook = (*Tenant)(nil)
	_ core.PublishHook = (*Tenant)(nil)
)

// NewTenant returns a tenant.prefix hook; maxPayload 0 means no limit.
func NewTenant(prefix string, maxPayload int) (*Tenant, error) {
	if strings.ContainsAny(prefix, "+#") || (prefix != "" && topics.ValidateTopicName(prefix) != nil) {
		return nil, fmt.Errorf("%s: prefix %q is not the start of a topic name", TenantID, prefix)
	}
	if maxPayload < 0 {
		return nil, errors.New(TenantID + ": max_payload must not be negative")
	}
	return &Tenant{prefix: prefix, maxPayload: maxPayload}, nil
}

// ID implements core.Hook.
func (*Tenant) ID() string { return TenantID }

// Connect implements core.ConnectHook. It runs after authentication (auth.file
// has checked the password) and sets the client's mountpoint. A username
// with a topic separator or wildcard could reach into another tenant's
// space ("alice/x" would see alice's "x/…"), so it is refused. It returns
// Next, not Allow: having set the policy it has no opinion on the
// connection, and later Connect hooks still run.
func (t *Tenant) Connect(_ context.Context, cl *core.ClientInfo, policy *core.ClientPolicy) core.Verdict {
	if cl.Username == "" || strings.ContainsAny(cl.Username, "/+#") {
		return core.Deny(packets.NotAuthorized, "a tenant needs a username without '/', '+' or '#'")
	}
	policy.Mountpoint = t.prefix + cl.Username + "/"
	return core.Next
}

// Publish implements core.PublishHook: it refuses a payload over the limit with
// Quota Exceeded (0x97), which a QoS 1 or 2 publisher sees in its
// PUBACK/PUBREC (MQTT 5). Packet Too Large (0x95) is not a valid PUBACK
// reason code. m.Topic is the broker-side topic, mountpoint included.
func (t *Tenant) Publish(_ context.Context, _ *core.ClientInfo, m *core.Message) core.Verdict {
	if t.maxPayload > 0 && len(m.Payload) > t.maxPayload {
		return core.Deny(packets.QuotaExceeded,
			fmt.Sprintf("payload of %d bytes is over the limit of %d", len(m.Payload), t.maxPayload))
	}
	return core.Next
}
