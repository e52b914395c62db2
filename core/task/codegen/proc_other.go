//go:build !unix

package codegen

import (
	"context"
	"os/exec"
)

// ownGroup: without process groups, the context kills the command itself
// (exec.CommandContext's default).
func ownGroup(cmd *exec.Cmd, isolate bool) {}

func killGroup(pid int) {}

func isolationRefused(error) bool { return false }

const canIsolate = false

// command is the process that runs the check path argv (no isolation
// here).
func command(ctx context.Context, path string, argv []string, isolate bool) (*exec.Cmd, error) {
	return exec.CommandContext(ctx, path, argv[1:]...), nil
}
