//go:build cuda

package devnet_test

import (
	"os"
	"strconv"
	"testing"
)

// TestMain bounds the emulated device (cuda/emu: DISTILL_CUDA_EMU_MEM, by
// default 8 GiB, a user's card) to 1 GiB unless it is set: the tests that
// fill the device to see what a run does when it is full then write 1 GiB
// of host memory, not 8 (the emulator fills each new allocation), and
// every test fits in it. A real device ignores the variable.
func TestMain(m *testing.M) {
	if os.Getenv("DISTILL_CUDA_EMU_MEM") == "" {
		os.Setenv("DISTILL_CUDA_EMU_MEM", strconv.Itoa(1<<30))
	}
	os.Exit(m.Run())
}
