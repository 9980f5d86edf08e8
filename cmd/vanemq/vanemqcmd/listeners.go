package vanemqcmd

import (
	"github.com/vanemq/vanemq/core"
	"github.com/vanemq/vanemq/listeners/tcp"
)

// listenerTypes maps each value of listeners[].type to the constructor of
// its transport. The config loader accepts exactly these types and lists
// them in its error message; to add a transport (tls, ws, unix), add an entry
// here, plus any keys of its own to the loader.
func listenerTypes() map[string]func(listenerConfig) core.Listener {
	return map[string]func(listenerConfig) core.Listener{
		"tcp": func(c listenerConfig) core.Listener { return tcp.New(c.ID, c.Address) },
	}
}
