package auth

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
)

// debounce is how long the watcher waits after the last change to a file
// before reloading: editors and tools write a file in several steps
// (truncate, write, rename), and only the end result should be loaded.
const debounce = 100 * time.Millisecond

// kubeDataLink is the symlink Kubernetes swaps to update a ConfigMap or
// Secret volume at once; the files in it are symlinks through it, so a
// change shows as an event on this name only.
const kubeDataLink = "..data"

// watcher reloads a File on SIGHUP and when its files change.
type watcher struct {
	fs      *fsnotify.Watcher
	sig     chan os.Signal
	done    chan struct{} // closed by stop
	stopped chan struct{} // closed when the loop has returned
}

// startWatcher watches the directories of the hook's files (not the files
// themselves: an editor or `vanemq passwd` replaces a file by renaming a
// new one over it, which a watch on the old file would not follow) and
// SIGHUP.
func (f *File) startWatcher() (*watcher, error) {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("fsnotify: %w", err)
	}
	files := make(map[string]bool)
	dirs := make(map[string]bool)
	for _, p := range []string{f.opts.Users, f.opts.ACL} {
		if p == "" {
			continue
		}
		p = filepath.Clean(p)
		files[p] = true
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
	w := &watcher{
		fs:      fw,
		sig:     make(chan os.Signal, 1),
		done:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	signal.Notify(w.sig, syscall.SIGHUP)
	go f.watchLoop(w, func(ev fsnotify.Event) bool { return relevant(ev, files, dirs) })
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

// watchLoop reloads at once on SIGHUP, and debounce after the last change
// to a file, until stop.
func (f *File) watchLoop(w *watcher, relevant func(fsnotify.Event) bool) {
	defer close(w.stopped)
	timer := time.NewTimer(debounce)
	timer.Stop()
	defer timer.Stop()
	events, errs := w.fs.Events, w.fs.Errors
	for {
		select {
		case <-w.done:
			return
		case <-w.sig:
			_ = f.reload("SIGHUP")
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if relevant(ev) {
				timer.Reset(debounce)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			f.log.Warn("auth.file: watching the files; SIGHUP still reloads", "err", err)
		case <-timer.C:
			_ = f.reload("file change")
		}
	}
}

// stop ends the loop and releases the signal and the file watches.
func (w *watcher) stop() error {
	signal.Stop(w.sig)
	close(w.done)
	<-w.stopped
	if err := w.fs.Close(); err != nil {
		return fmt.Errorf("fsnotify: %w", err)
	}
	return nil
}
