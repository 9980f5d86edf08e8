package storage

import (
	"fmt"
	"sync"
	"syscall"
	"time"
)

// spaceGuard tells whether the disk of a directory has room for a write,
// keeping minFree bytes free. It asks the file system at most every
// recheck while space is plentiful, and before every write once it is
// within four times minFree.
type spaceGuard struct {
	path    string
	minFree uint64

	mu      sync.Mutex
	free    uint64
	checked time.Time
}

const spaceRecheck = 20 * time.Millisecond

func newSpaceGuard(path string, minFree uint64) *spaceGuard {
	return &spaceGuard{path: path, minFree: minFree}
}

// check returns an error naming the directory when writing n more bytes
// would leave less than minFree free.
func (g *spaceGuard) check(n int) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	if g.free < 4*g.minFree+uint64(n) || now.Sub(g.checked) > spaceRecheck {
		var st syscall.Statfs_t
		if err := syscall.Statfs(g.path, &st); err != nil {
			return fmt.Errorf("checking the free space of %s: %w", g.path, err)
		}
		g.free = st.Bavail * uint64(st.Bsize)
		g.checked = now
	}
	if g.free < g.minFree+uint64(n) {
		return fmt.Errorf("the disk of %s is nearly full: %d bytes free, %d needed with min_free_space %d; not written", g.path, g.free, uint64(n)+g.minFree, g.minFree)
	}
	g.free -= uint64(n)
	return nil
}
