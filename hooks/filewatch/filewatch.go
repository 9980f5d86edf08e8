// Package filewatch reloads a hook's files: on SIGHUP, and shortly after
// one of them changes on disk. auth.file and the js hook use it.
package filewatch

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Debounce is how long the watcher waits after the last change to a file
// before reloading: editors and tools write a file in several steps
// (truncate, write, rename), and only the end result should be loaded.
const Debounce = 100 * time.Millisecond

// kubeDataLink is the symlink Kubernetes swaps to update a ConfigMap or
// Secret volume at once; the files in it are symlinks through it, so a
// change shows as an event on this name only.
const kubeDataLink = "..data"

// Watcher calls a reload function on SIGHUP and when its files change.
type Watcher struct {
	fs       *fsnotify.Watcher
	sig      chan os.Signal
	done     chan struct{} // closed by Stop
	stopped  chan struct{} // closed when the loop has returned
	stopOnce sync.Once
	stopErr  error
}

// Start watches the directories of files (not the files themselves: an
// editor or `vanemq passwd` replaces a file by renaming a new one over
// it, which a watch on the old file would not follow) and SIGHUP, and
// calls reload with "SIGHUP" or "file change" until Stop. reload runs on
// the watcher's goroutine, one call at a time.
func Start(files []string, log *slog.Logger, reload func(trigger string)) (*Watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("fsnotify: %w", err)
	}
	names := make(map[string]bool)
	dirs := make(map[string]bool)
	for _, p := range files {
		if p == "" {
			continue
		}
		p = filepath.Clean(p)
		names[p] = true
		dir := filepath.Dir(p)
		if dirs[dir] {
			continue
		}
		if err := fw.Add(dir); err != nil {
			_ = fw.Close()
			return nil, fmt.Errorf("watch directory %s: %w", dir, err)
		}
		dirs[dir] = true
	}
	w := &Watcher{
		fs:      fw,
		sig:     make(chan os.Signal, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	signal.Notify(w.sig, syscall.SIGHUP)
	go w.loop(log, reload, func(ev fsnotify.Event) bool { return relevant(ev, names, dirs) })
	return w, nil
}

// relevant reports whether a change in a watched directory may have
// changed one of the files: a change to the file itself (a change of
// mode only is ignored), or Kubernetes swapping its ..data link.
func relevant(ev fsnotify.Event, files, dirs map[string]bool) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	name := filepath.Clean(ev.Name)
	return files[name] || (filepath.Base(name) == kubeDataLink && dirs[filepath.Dir(name)])
}

// loop reloads at once on SIGHUP, and Debounce after the last change to a
// file, until Stop.
func (w *Watcher) loop(log *slog.Logger, reload func(string), relevant func(fsnotify.Event) bool) {
	defer close(w.stopped)
	timer := time.NewTimer(Debounce)
	timer.Stop()
	defer timer.Stop()
	events, errs := w.fs.Events, w.fs.Errors
	for {
		select {
		case <-w.done:
			return
		case <-w.sig:
			reload("SIGHUP")
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if relevant(ev) {
				timer.Reset(Debounce)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			log.Warn("watching files failed; SIGHUP still reloads", "err", err)
		case <-timer.C:
			reload("file change")
		}
	}
}

// Stop ends the loop and releases the signal and the file watches. It may
// be called more than once.
func (w *Watcher) Stop() error {
	w.stopOnce.Do(func() {
		signal.Stop(w.sig)
		close(w.done)
		<-w.stopped
		if err := w.fs.Close(); err != nil {
			w.stopErr = fmt.Errorf("fsnotify: %w", err)
		}
	})
	return w.stopErr
}

// Stopped is closed once the watcher has stopped.
func (w *Watcher) Stopped() <-chan struct{} { return w.stopped }
