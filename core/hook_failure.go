package core

import (
	"fmt"

	"github.com/vanemq/vanemq/core/packets"
)

// FailurePolicy is what a decision becomes when a hook that runs code of
// its own cannot answer it: a script that throws or times out, a plugin
// binary that is down or too slow. hooks/js and plugins read it from their
// config's on_failure key.
type FailurePolicy string

// The failure policies.
const (
	// FailDeny refuses the decision with 0x83 (Implementation specific
	// error): fail closed. It is the default.
	FailDeny FailurePolicy = "deny"
	// FailNext leaves the decision to the next hook, as if the hook had
	// no opinion: fail open, for hooks that only add restrictions.
	FailNext FailurePolicy = "next"
)

// Fill checks the policy as a config key gave it and sets the default,
// FailDeny, when it is empty.
func (p *FailurePolicy) Fill() error {
	switch *p {
	case "":
		*p = FailDeny
	case FailDeny, FailNext:
	default:
		return fmt.Errorf("on_failure: %q is not %s or %s", string(*p), FailDeny, FailNext)
	}
	return nil
}

// Verdict is what a failed decision becomes under the policy; reason is
// the refusal's reason string ("js hook failed").
func (p FailurePolicy) Verdict(reason string) Verdict {
	if p == FailNext {
		return Next
	}
	return Deny(packets.ImplementationSpecificError, reason)
}
