package plugins

import (
	"fmt"

	"github.com/vanemq/vanemq/core"
)

func init() {
	core.RegisterHookModule(core.HookModule{ID: ID, New: newModule})
}

// newModule starts the plugin of a config block; the binary's path is
// taken from the config file's directory.
func newModule(hc core.HookConfig) (core.Hook, error) {
	var c Config
	if hc.Decode != nil {
		if err := hc.Decode(&c); err != nil {
			return nil, fmt.Errorf("%s: config: %w", ID, err)
		}
	}
	c.Dir, c.Logger, c.Name = hc.Dir, hc.Logger, hc.ID
	return New(c, hc.Server)
}
