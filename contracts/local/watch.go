package local

import (
	"context"
	"os"
	"time"
)

// WatchInterval is how often a watched file is looked at.
const WatchInterval = 500 * time.Millisecond

// Watch calls changed whenever the file at path looks different (size,
// modification time, or inode, which an atomic replace changes) from the
// last look, until ctx is done. It only stats the file, so it costs
// nothing while nothing changes; a change is seen within about interval.
func Watch(ctx context.Context, path string, interval time.Duration, changed func()) {
	last := stamp(path)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if now := stamp(path); now != last {
			last = now
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
