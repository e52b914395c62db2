package app

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"distill/core/train"
)

// progress prints training events: a redrawn bar on a terminal, plain lines
// (every few seconds and at the end) when the output is a file or a pipe.
type progress struct {
	w        io.Writer
	tty      bool
	last     time.Time
	finished bool
}

func newProgress(w io.Writer) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &progress{w: w, tty: tty}
}

func (p *progress) event(e train.Event) {
	eta := time.Duration(0)
	if e.Step > 0 {
		eta = time.Duration(float64(e.Elapsed) / float64(e.Step) * float64(e.TotalSteps-e.Step))
	}
	stats := fmt.Sprintf("step %d/%d  loss %.4f  lr %.2e  gnorm %.2f  %.0f tok/s  rss %.0f MB  eta %s",
		e.Step, e.TotalSteps, e.Loss, e.LR, e.GradNorm, e.TokensPerSec, float64(e.RSS)/1e6, eta.Round(time.Second))
	if p.tty {
		const width = 24
		done := width * e.Step / max(1, e.TotalSteps)
		fmt.Fprintf(p.w, "\r[%s%s] %s\x1b[K", strings.Repeat("█", done), strings.Repeat("·", width-done), stats)
		if e.Step == e.TotalSteps {
			fmt.Fprintln(p.w)
		}
		return
	}
	if e.Step == e.TotalSteps || e.Step == 1 || time.Since(p.last) > 5*time.Second {
		fmt.Fprintln(p.w, stats)
		p.last = time.Now()
	}
}

// line prints a message on its own line (ending a bar in progress).
func (p *progress) line(format string, args ...any) {
	if p.tty {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}
