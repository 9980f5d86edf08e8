package sdk

import (
	"math"

	"github.com/vanemq/vanemq/plugins/proto/pluginv1"
)

// PolicyOf converts a policy from the wire form: an unset field is zero,
// which keeps the broker's option (for the broker's side and tests;
// plugin code does not need it).
func PolicyOf(p *pluginv1.ClientPolicy) ClientPolicy {
	return ClientPolicy{MaxQueuedMessages: int(p.GetMaxQueuedMessages()), MaxInflight: uint16(min(p.GetMaxInflight(), math.MaxUint16)),
		MaxPacketSize: p.GetMaxPacketSize(), Mountpoint: p.GetMountpoint(), SessionExpiryMax: p.GetSessionExpiryMax()}
}

// PolicyChanges is the wire form of what a Connect handler changed in the
// policy it was given: only those fields are set, so only they change the
// broker's; nil when it changed nothing (for the broker's side and tests;
// plugin code does not need it).
func PolicyChanges(given, now ClientPolicy) *pluginv1.ClientPolicy {
	if given == now {
		return nil
	}
	out := &pluginv1.ClientPolicy{}
	if now.MaxQueuedMessages != given.MaxQueuedMessages {
		v := uint32(min(max(now.MaxQueuedMessages, 0), math.MaxUint32))
		out.MaxQueuedMessages = &v
	}
	if now.MaxInflight != given.MaxInflight {
		v := uint32(now.MaxInflight)
		out.MaxInflight = &v
	}
	if now.MaxPacketSize != given.MaxPacketSize {
		out.MaxPacketSize = &now.MaxPacketSize
	}
	if now.Mountpoint != given.Mountpoint {
		out.Mountpoint = &now.Mountpoint
	}
	if now.SessionExpiryMax != given.SessionExpiryMax {
		out.SessionExpiryMax = &now.SessionExpiryMax
	}
	return out
}
