package store

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
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

// ownerIdentity is where this process's pids are meaningful, recorded with
// a run's pid (runs.owner): the host name, the PID namespace
// (/proc/self/ns/pid, e.g. "pid:[4026531836]") and the boot
// (/proc/sys/kernel/random/boot_id), as "host=H pidns=N boot=B". Two
// processes with the same identity see the same pids and the same process
// start times, so one can judge the other's pid; a trainer in a container
// (its own PID namespace) has another identity than a process on the host.
// A part that cannot be read is "?". Computed once: none of the parts
// changes while the process runs.
var ownerIdentity = sync.OnceValue(func() string {
	host, _ := os.Hostname()
	pidns, _ := os.Readlink("/proc/self/ns/pid")
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return formatIdentity(identity{host: host, pidns: pidns, boot: string(boot)})
})

// identity is an owner identity's parts.
type identity struct{ host, pidns, boot string }

func formatIdentity(id identity) string {
	return "host=" + identityPart(id.host) + " pidns=" + identityPart(id.pidns) + " boot=" + identityPart(id.boot)
}

// identityPart makes s one space-free word, "?" when empty.
func identityPart(s string) string {
	s = strings.Join(strings.Fields(s), "_")
	if s == "" {
		return "?"
	}
	return s
}

// parseIdentity reads formatIdentity's output; unknown or missing parts
// are "".
func parseIdentity(s string) identity {
	var id identity
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		if v == "?" {
			v = ""
		}
		switch k {
		case "host":
			id.host = v
		case "pidns":
			id.pidns = v
		case "boot":
			id.boot = v
		}
	}
	return id
}

// rebootedSince reports whether the owner identity recorded is this
// machine before a reboot: the same host name and another boot id, both
// known. Every process of that boot is gone. (A database in WAL mode cannot
// be shared between machines, so a different boot id with the same name is
// not another machine writing to this file.)
func rebootedSince(recorded string) bool {
	then, now := parseIdentity(recorded), parseIdentity(ownerIdentity())
	return then.host != "" && then.host == now.host &&
		then.boot != "" && now.boot != "" && then.boot != now.boot
}
