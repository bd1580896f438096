package local

import (
	"context"
	"os"
	"time"
)

// WatchInterval is how often a watched file is looked at.
const WatchInterval = 500 * time.Millisecond

// Watcher notices changes of a file from the moment it is made: make it
// before reading the file, so no change between the read and the first
// look is missed.
type Watcher struct {
	path string
	last fileStamp
}

// NewWatcher looks at path now.
func NewWatcher(path string) *Watcher { return &Watcher{path: path, last: stamp(path)} }

// Run calls changed whenever the file looks different (size, modification
// time, or inode, which an atomic replace changes) from the last look,
// until ctx is done. It only stats the file, so it costs nothing while
// nothing changes; a change is seen within about interval.
func (w *Watcher) Run(ctx context.Context, interval time.Duration, changed func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if now := stamp(w.path); now != w.last {
			w.last = now
			changed()
		}
	}
}

type fileStamp struct {
	size  int64
	mtime time.Time
	ino   uint64
}

func stamp(path string) fileStamp {
	info, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{size: info.Size(), mtime: info.ModTime(), ino: inode(info)}
}
