package codegen

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A check may write only beneath its own directory (its TMPDIR and GOPATH
// are inside it), GOCACHE and Options.Writable's, and into /dev/null and
// /dev/tty — in its namespaces, or without them where the kernel refused
// them (confineArg): Landlock (Linux 5.13 on, no privileges needed) takes
// every other write, creation, removal, rename and truncation away from it
// and all it starts, so generated code that deletes or rewrites the user's
// files fails instead. Reads are not confined: compilers and interpreters
// read the whole system (in its namespaces the check has no network to
// send what it reads).

// landlockABI is the kernel's Landlock ABI version, 0 where it has none
// (too old, or turned off).
func landlockABI() int {
	v, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if e != 0 {
		return 0
	}
	return int(v)
}

// writableDirs are the directories a check may write beneath: its working
// directory, TMPDIR's (os.TempDir), GOCACHE and Options.Writable's
// (writableEnv), those that exist.
func writableDirs() []string {
	var dirs []string
	for _, d := range append([]string{".", os.TempDir(), os.Getenv("GOCACHE")}, filepath.SplitList(os.Getenv(writableEnv))...) {
		if d == "" {
			continue
		}
		if abs, err := filepath.Abs(d); err == nil {
			if fi, err := os.Stat(abs); err == nil && fi.IsDir() {
				dirs = append(dirs, abs)
			}
		}
	}
	return dirs
}

// confineWrites restricts this process, and what it executes, to writing
// beneath dirs (and into /dev/null, /dev/tty). It does nothing, returning
// nil, where the kernel has no Landlock.
func confineWrites(dirs []string) error {
	abi := landlockABI()
	if abi < 1 {
		return nil
	}
	handled := uint64(unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_REMOVE_DIR |
		unix.LANDLOCK_ACCESS_FS_REMOVE_FILE | unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_DIR |
		unix.LANDLOCK_ACCESS_FS_MAKE_REG | unix.LANDLOCK_ACCESS_FS_MAKE_SOCK | unix.LANDLOCK_ACCESS_FS_MAKE_FIFO |
		unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK | unix.LANDLOCK_ACCESS_FS_MAKE_SYM)
	if abi >= 2 { // renames and links across directories
		handled |= unix.LANDLOCK_ACCESS_FS_REFER
	}
	if abi >= 3 {
		handled |= unix.LANDLOCK_ACCESS_FS_TRUNCATE
	}
	// Its first field alone: the kernels of every ABI read that much (the
	// rest of unix.LandlockRulesetAttr is newer).
	attr := unix.LandlockRulesetAttr{Handled_access_fs: handled}
	fd, _, e := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), 8, 0)
	if e != 0 {
		return fmt.Errorf("landlock ruleset: %w", e)
	}
	defer unix.Close(int(fd))
	fileRights := handled & (unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_TRUNCATE)
	for _, p := range append(dirs, "/dev/null", "/dev/tty") {
		rights := handled
		if p == "/dev/null" || p == "/dev/tty" {
			rights = fileRights
		}
		if err := landlockAllow(int(fd), p, rights); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // a device this system lacks
			}
			return err
		}
	}
	// Required to restrict itself without privileges; what it executes
	// gains none (set-user-ID bits are ignored), as a check needs none.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	if _, _, e := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, fd, 0, 0); e != 0 {
		return fmt.Errorf("landlock restrict: %w", e)
	}
	return nil
}

// landlockAllow adds the rule "rights beneath path" to the ruleset.
func landlockAllow(ruleset int, path string, rights uint64) error {
	f, err := unix.Open(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("landlock %s: %w", path, err)
	}
	defer unix.Close(f)
	// The kernel reads the packed 12 bytes (rights, then the descriptor)
	// that begin the Go struct.
	rule := unix.LandlockPathBeneathAttr{Allowed_access: rights, Parent_fd: int32(f)}
	if _, _, e := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(ruleset), unix.LANDLOCK_RULE_PATH_BENEATH,
		uintptr(unsafe.Pointer(&rule)), 0, 0, 0); e != 0 {
		return fmt.Errorf("landlock %s: %w", path, e)
	}
	return nil
}
