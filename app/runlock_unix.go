//go:build unix

package app

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// lockRunFolder takes an exclusive lock on dir (flock on the folder
// itself, so it adds no file) for as long as this process trains into it:
// two runs given the same --out at once would write each other's
// checkpoints and adapter. The lock goes with the process, a crash too.
func lockRunFolder(dir string) (unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: another distill process is training into this folder: wait for it, or choose another --out", dir)
		}
		if errors.Is(err, syscall.ENOLCK) || errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.ENOSYS) {
			return func() {}, nil // a file system without locks (some NFS, FUSE): train unlocked, as before locks
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() { f.Close() }, nil
}
