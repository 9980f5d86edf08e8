package auth

import (
	"github.com/vanemq/vanemq/hooks/filewatch"
)

// startWatcher reloads the hook on SIGHUP and when its files change.
func (f *File) startWatcher() (*filewatch.Watcher, error) {
	return filewatch.Start([]string{f.opts.Users, f.opts.ACL}, f.log.With("hook", FileID), func(trigger string) {
		_ = f.reload(trigger)
	})
}
