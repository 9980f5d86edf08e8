package filewatch

import (
	"testing"

	"github.com/fsnotify/fsnotify"
)

func TestRelevantEvents(t *testing.T) {
	files := map[string]bool{"/etc/vanemq/users.yaml": true, "/etc/vanemq/acl.yaml": true}
	dirs := map[string]bool{"/etc/vanemq": true}
	tests := []struct {
		name string
		op   fsnotify.Op
		want bool
	}{
		{"/etc/vanemq/users.yaml", fsnotify.Write, true},
		{"/etc/vanemq/acl.yaml", fsnotify.Create, true},
		{"/etc/vanemq/acl.yaml", fsnotify.Rename, true},
		{"/etc/vanemq/acl.yaml", fsnotify.Remove, true},
		{"/etc/vanemq//acl.yaml", fsnotify.Write, true},
		{"/etc/vanemq/acl.yaml", fsnotify.Chmod, false},
		{"/etc/vanemq/acl.yaml", fsnotify.Chmod | fsnotify.Write, true},
		{"/etc/vanemq/.acl.yaml.tmp-123", fsnotify.Create, false},
		{"/etc/vanemq/vanemq.log", fsnotify.Write, false},
		{"/etc/vanemq/..data", fsnotify.Create, true},
		{"/elsewhere/..data", fsnotify.Create, false},
	}
	for _, tc := range tests {
		if got := relevant(fsnotify.Event{Name: tc.name, Op: tc.op}, files, dirs); got != tc.want {
			t.Errorf("relevant(%s %s) = %v, want %v", tc.op, tc.name, got, tc.want)
		}
	}
}
