package codegen

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"unsafe"
)

// canIsolate: Linux can start a check in namespaces of its own.
const canIsolate = true

// sandboxArg marks the re-executed binary that prepares a check's network
// namespace (its loopback up) and confines its writes before it becomes
// the check: the namespace is born with lo down, and tests that listen on
// 127.0.0.1 (httptest, a local socket) would fail as if the code were
// wrong.
const sandboxArg = "__distill_codegen_sandbox"

// confineArg marks the re-executed binary that only confines a check's
// writes: where the kernel refused the namespaces, Landlock may still be
// granted.
const confineArg = "__distill_codegen_confine"

func init() {
	if len(os.Args) > 3 && (os.Args[1] == sandboxArg || os.Args[1] == confineArg) {
		sandboxExec(os.Args[2], os.Args[3:], os.Args[1] == sandboxArg)
	}
}

// sandboxExec brings up the namespace's loopback (in one: netns) and
// confines writes, then replaces this process with the check (path, argv).
// It does not return.
func sandboxExec(path string, argv []string, netns bool) {
	// Without it the check still runs: only code that uses 127.0.0.1
	// fails (the namespace is ours, so this fails only if the kernel
	// denies even that).
	if netns {
		_ = loopbackUp()
	}
	// Writes confined (landlock_linux.go); where the kernel refuses, the
	// check runs as the namespaces leave it, and its output says so.
	if err := confineWrites(writableDirs()); err != nil {
		fmt.Fprintf(os.Stderr, "codegen sandbox: writes not confined: %v\n", err)
	}
	err := syscall.Exec(path, argv, os.Environ())
	fmt.Fprintf(os.Stderr, "codegen sandbox: %s: %v\n", path, err)
	os.Exit(126)
}

// loopbackUp sets the IFF_UP flag of "lo" (SIOCGIFFLAGS, SIOCSIFFLAGS).
func loopbackUp() error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	var ifr struct {
		name  [syscall.IFNAMSIZ]byte
		flags uint16
		_     [24]byte
	}
	copy(ifr.name[:], "lo")
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.SIOCGIFFLAGS, uintptr(unsafe.Pointer(&ifr))); e != 0 {
		return e
	}
	ifr.flags |= syscall.IFF_UP
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.SIOCSIFFLAGS, uintptr(unsafe.Pointer(&ifr))); e != 0 {
		return e
	}
	return nil
}

// command is the process that runs the check path argv: this binary
// re-executed to prepare the namespaces (isolated: sandboxArg) or only to
// confine the check's writes (confineArg) first; the check itself where
// this binary cannot be found.
func command(ctx context.Context, path string, argv []string, isolate bool) (*exec.Cmd, error) {
	self, err := os.Executable()
	switch {
	case err != nil && isolate:
		return nil, err
	case err != nil:
		return exec.CommandContext(ctx, path, argv[1:]...), nil
	case isolate:
		return exec.CommandContext(ctx, self, append([]string{sandboxArg, path}, argv...)...), nil
	}
	return exec.CommandContext(ctx, self, append([]string{confineArg, path}, argv...)...), nil
}

// ownGroup starts cmd in a process group of its own, killed as a whole
// when the context ends (go test runs the test binary as a child; killing
// only go would leave it running).
//
// With isolate, cmd also gets its own PID and network namespaces (and a
// user namespace mapping only our ids, where we are not root): generated
// code reaches no network but its own loopback, and whatever it starts —
// even in a session of its own, out of the process group — dies with the
// check, since the kernel kills a PID namespace's processes when its first
// one exits.
func ownGroup(cmd *exec.Cmd, isolate bool) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if isolate {
		cmd.SysProcAttr.Cloneflags = isolationFlags()
		if uid, gid := os.Getuid(), os.Getgid(); uid != 0 {
			cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
			cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
			cmd.SysProcAttr.GidMappingsEnableSetgroups = false
		}
	}
	cmd.Cancel = func() error {
		killGroup(cmd.Process.Pid)
		return nil
	}
}

func isolationFlags() uintptr {
	f := uintptr(syscall.CLONE_NEWPID | syscall.CLONE_NEWNET)
	if os.Getuid() != 0 {
		f |= syscall.CLONE_NEWUSER
	}
	return f
}

// isolationRefused reports whether err, a check's failure to start
// isolated, is the kernel refusing the namespaces (user namespaces turned
// off, a container's seccomp policy) rather than the check's own: an
// errno that could be either is settled once, by starting nothing but the
// namespaces.
func isolationRefused(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case syscall.EPERM, syscall.EINVAL, syscall.ENOSPC, syscall.EUSERS, syscall.EACCES, syscall.ENOSYS:
	default:
		return false
	}
	probe.Do(func() {
		self, err := os.Executable()
		if err != nil {
			probe.refused = true
			return
		}
		cmd := exec.Command(self, "-h") // never runs past its start: only the clone is tried
		ownGroup(cmd, true)
		if err := cmd.Start(); err != nil {
			var e syscall.Errno
			probe.refused = errors.As(err, &e)
			return
		}
		killGroup(cmd.Process.Pid)
		cmd.Wait()
	})
	return probe.refused
}

var probe struct {
	sync.Once
	refused bool
}

// killGroup kills the process group led by pid, if any is left.
func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}
