package plugins

import "github.com/vanemq/vanemq/core"

// The module: the hook is made from its decoded config block, with the
// hook's ID, logger and config directory, from which the binary's path is
// taken when relative.
func init() {
	core.RegisterHookModule(core.Module(ID, Config{}, func(hc core.HookConfig, c Config) (core.Hook, error) {
		c.Dir, c.Logger, c.Name = hc.Dir, hc.Logger, hc.ID
		return New(c, hc.Server)
	}))
}
