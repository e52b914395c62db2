//go:build unix && !linux

package codegen

import (
	"context"
	"os/exec"
	"syscall"
)

// ownGroup starts cmd in a process group of its own, killed as a whole
// when the context ends (go test runs the test binary as a child; killing
// only go would leave it running). There are no namespaces to isolate it
// in here: isolate is ignored.
func ownGroup(cmd *exec.Cmd, isolate bool) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		killGroup(cmd.Process.Pid)
		return nil
	}
}

// killGroup kills the process group led by pid, if any is left.
func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// isolationRefused: this system cannot isolate checks.
func isolationRefused(error) bool { return false }

const canIsolate = false

// command is the process that runs the check path argv (no isolation
// here).
func command(ctx context.Context, path string, argv []string, isolate bool) (*exec.Cmd, error) {
	return exec.CommandContext(ctx, path, argv[1:]...), nil
}
