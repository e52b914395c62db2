//go:build cuda

package cuda

// LoseContext makes every CUDA call fail as after a fault that loses the
// context, first naming msg, until restore is called.
func LoseContext(msg string) (restore func()) {
	lost.Store(&msg)
	return func() { lost.Store(nil) }
}
