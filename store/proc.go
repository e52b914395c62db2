package store

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// procStat reads the state (field 3) and start time in clock ticks since
// boot (field 22) of process pid from /proc/<pid>/stat. The command name in
// field 2 may hold spaces and parentheses, so fields are counted from its
// closing parenthesis.
func procStat(pid int) (state string, start int64, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", 0, false
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3
	if len(f) < 20 {
		return "", 0, false
	}
	start, err = strconv.ParseInt(f[19], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return f[0], start, true
}

// processStart is the start time of process pid, where /proc tells it.
func processStart(pid int) (int64, bool) {
	_, start, ok := procStat(pid)
	return start, ok
}

// processAlive reports whether process pid exists and has not exited (a
// zombie waiting to be reaped has exited).
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if state, _, ok := procStat(pid); ok {
		return state != "Z" && state != "X"
	}
	if _, err := os.Stat("/proc/self/stat"); err == nil {
		return false // /proc is there and the pid is not
	}
	// No /proc: ask the kernel with signal 0; EPERM means it exists.
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = p.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, os.ErrPermission)
}
