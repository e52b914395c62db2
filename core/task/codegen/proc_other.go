//go:build !unix

package codegen

import "os/exec"

// ownGroup: without process groups, the context kills the command itself
// (exec.CommandContext's default).
func ownGroup(cmd *exec.Cmd, isolate bool) {}

func killGroup(pid int) {}

func isolationRefused(error) bool { return false }

const canIsolate = false
