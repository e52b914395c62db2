package app

import "testing"

// The micro-batch a device can hold (what checkDeviceFit suggests): the
// largest seq/f that fits, with accumulation ×f; nothing when even 16
// tokens (or a shorter configured seq_len) do not fit.
func TestFitMicroBatch(t *testing.T) {
	need := func(n int) int64 { return int64(n) * 1000 } // 1 KB a token
	for _, c := range []struct {
		seq, accum int
		free       int64
		tokens     int
		newAccum   int
		ok         bool
	}{
		{2048, 1, 3_000_000, 2048, 1, true}, // fits as asked
		{2048, 1, 2_047_999, 1024, 2, true}, // one token short: halve, accumulate 2
		{2048, 2, 800_000, 683, 6, true},    // 2048/3 = 683: accumulate 2×3
		{100, 1, 16_000, 0, 0, false},       // 100/6 = 17 tokens need 17 KB; 100/7 < 16: refused
		{64, 1, 16_000, 16, 4, true},
		{64, 1, 15_999, 0, 0, false},
		{8, 1, 8_000, 8, 1, true}, // a seq_len under 16 is tried as it is
		{8, 1, 7_999, 0, 0, false},
	} {
		tokens, accum, ok := fitMicroBatch(c.seq, c.accum, c.free, need)
		if tokens != c.tokens && c.ok || accum != c.newAccum && c.ok || ok != c.ok {
			t.Errorf("seq %d accum %d free %d: got %d tokens ×%d (%v), want %d ×%d (%v)",
				c.seq, c.accum, c.free, tokens, accum, ok, c.tokens, c.newAccum, c.ok)
		}
	}
}
