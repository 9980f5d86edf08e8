package js

import (
	"math"
	"strings"

	"github.com/dop251/goja"

	"github.com/vanemq/vanemq/core"
)

// policyObject is connect's second argument, the client's policy
// (core.ClientPolicy), the one object a script may write to:
//
//	mountpoint         string, prefixed to the client's topics: "tenant-a/"
//	maxQueuedMessages  integer, 0 to 2147483647
//	maxInflight        integer, 0 to 65535
//	maxPacketSize      integer, 0 to 4294967295 (bytes)
//	sessionExpiryMax   integer, 0 to 4294967295 (seconds)
//
// Each reads as it is now (0 or "": the server's option). An assignment
// of a value of the wrong type, out of range, or to another field, throws
// a TypeError that says why, which fails the call; so does an assignment
// once the call is over. Deleting a field is refused as for the other
// objects.
type policyObject struct {
	readOnly
	rt      *goja.Runtime
	p       core.ClientPolicy
	changed bool
	done    bool // the call is over
}

var policyKeys = []string{"mountpoint", "maxQueuedMessages", "maxInflight", "maxPacketSize", "sessionExpiryMax"}

func (o *policyObject) Get(key string) goja.Value {
	switch key {
	case "mountpoint":
		return o.rt.ToValue(o.p.Mountpoint)
	case "maxQueuedMessages":
		return o.rt.ToValue(o.p.MaxQueuedMessages)
	case "maxInflight":
		return o.rt.ToValue(o.p.MaxInflight)
	case "maxPacketSize":
		return o.rt.ToValue(o.p.MaxPacketSize)
	case "sessionExpiryMax":
		return o.rt.ToValue(o.p.SessionExpiryMax)
	}
	return nil
}

// Set checks and sets a field; a bad value throws.
func (o *policyObject) Set(key string, val goja.Value) bool {
	if o.done {
		panic(o.rt.NewTypeError("policy.%s: the policy can only be set during connect", key))
	}
	switch key {
	case "mountpoint":
		s, ok := val.Export().(string)
		if !ok {
			panic(o.rt.NewTypeError("policy.mountpoint: %s %s is not a string", typeName(val), val.String()))
		}
		if err := core.CheckMountpoint(s); err != nil {
			panic(o.rt.NewTypeError("policy.mountpoint: %v", err))
		}
		o.p.Mountpoint = s
	case "maxQueuedMessages":
		o.p.MaxQueuedMessages = int(o.integer(key, val, math.MaxInt32))
	case "maxInflight":
		o.p.MaxInflight = uint16(o.integer(key, val, math.MaxUint16))
	case "maxPacketSize":
		o.p.MaxPacketSize = uint32(o.integer(key, val, math.MaxUint32))
	case "sessionExpiryMax":
		o.p.SessionExpiryMax = uint32(o.integer(key, val, math.MaxUint32))
	default:
		panic(o.rt.NewTypeError("policy has no field %q (fields: %s)", key, strings.Join(policyKeys, ", ")))
	}
	o.changed = true
	return true
}

// integer reads a field's value, an integer from 0 to limit, or throws.
func (o *policyObject) integer(key string, val goja.Value, limit uint64) uint64 {
	var f float64
	switch x := val.Export().(type) {
	case int64:
		f = float64(x)
	case float64:
		f = x
	default:
		panic(o.rt.NewTypeError("policy.%s: %s %s is not a number", key, typeName(val), val.String()))
	}
	if f != math.Trunc(f) || f < 0 || f > float64(limit) {
		panic(o.rt.NewTypeError("policy.%s: %s is not an integer from 0 to %d (0: the server's setting)", key, val.String(), limit))
	}
	return uint64(f)
}

func (o *policyObject) Has(key string) bool { return o.Get(key) != nil }
func (o *policyObject) Keys() []string      { return policyKeys }
