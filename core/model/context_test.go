package model

import "testing"

// ContextLimit is the shorter of max_position_embeddings and a sliding
// window the config turns on (CheckContext refuses past it).
func TestContextLimitHonoursTheSlidingWindow(t *testing.T) {
	m := &Model{}
	w, on, off := 16, true, false
	for _, c := range []struct {
		maxPos int
		window *int
		use    *bool
		want   int
	}{
		{0, nil, nil, 0},
		{64, nil, nil, 64},
		{64, &w, nil, 16},
		{64, &w, &on, 16},
		{64, &w, &off, 64},
		{0, &w, nil, 16},
		{8, &w, nil, 8},
	} {
		m.Config.MaxPositionEmbeddings, m.Config.SlidingWindow, m.Config.UseSlidingWindow = c.maxPos, c.window, c.use
		if got := m.ContextLimit(); got != c.want {
			t.Errorf("max positions %d, window %v, use %v: limit %d, want %d", c.maxPos, c.window != nil, c.use, got, c.want)
		}
		if c.want > 0 && (m.CheckContext(c.want) != nil || (c.window != nil && c.want == w && m.CheckContext(c.want+1) == nil)) {
			t.Errorf("max positions %d, window %v, use %v: CheckContext disagrees with the limit %d", c.maxPos, c.window != nil, c.use, c.want)
		}
	}
}
