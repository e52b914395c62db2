package train

import (
	"os"
	"strconv"
	"strings"
)

// ResidentBytes is the process's resident set size (VmRSS), 0 where
// /proc is unavailable.
func ResidentBytes() int64 { return procStatus("VmRSS:") }

// PeakResidentBytes is the high-water resident set (VmHWM).
func PeakResidentBytes() int64 { return procStatus("VmHWM:") }

// ResetPeakResident starts VmHWM again from the resident set now (Linux
// 4.0 and later), so a measurement's peak is its own; false where it
// cannot.
func ResetPeakResident() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

func procStatus(key string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == key {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
