package codegen

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// canIsolate: Linux can start a check in namespaces of its own.
const canIsolate = true

// ownGroup starts cmd in a process group of its own, killed as a whole
// when the context ends (go test runs the test binary as a child; killing
// only go would leave it running).
//
// With isolate, cmd also gets its own PID and network namespaces (and a
// user namespace mapping only our ids, where we are not root): generated
// code reaches no network, and whatever it starts — even in a session of
// its own, out of the process group — dies with the check, since the
// kernel kills a PID namespace's processes when its first one exits.
func ownGroup(cmd *exec.Cmd, isolate bool) {
	attr := &syscall.SysProcAttr{Setpgid: true}
	if isolate {
		attr.Cloneflags = syscall.CLONE_NEWPID | syscall.CLONE_NEWNET
		if uid, gid := os.Getuid(), os.Getgid(); uid != 0 {
			attr.Cloneflags |= syscall.CLONE_NEWUSER
			attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
			attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
			attr.GidMappingsEnableSetgroups = false
		}
	}
	cmd.SysProcAttr = attr
	cmd.Cancel = func() error {
		killGroup(cmd.Process.Pid)
		return nil
	}
}

// isolationRefused reports whether err is the kernel refusing the
// namespaces (user namespaces turned off, a container's seccomp policy, a
// namespace limit), so the check can run without them.
func isolationRefused(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case syscall.EPERM, syscall.EINVAL, syscall.ENOSPC, syscall.EUSERS, syscall.EACCES, syscall.ENOSYS:
		return true
	}
	return false
}

// killGroup kills the process group led by pid, if any is left.
func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}
