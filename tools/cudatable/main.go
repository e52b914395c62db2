// Command cudatable reads `go test -v -bench` output of the cuda package on
// stdin and prints one table: each test with its subtests' results, then
// each benchmark's time and rate. `make cuda-check` pipes into it. It exits
// non-zero when a test failed or nothing ran.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

type testRow struct {
	name                string
	result              string // PASS, FAIL or SKIP of the top-level test
	time                string
	pass, fail, skip    int // its subtests
	firstFail, skipNote string
}

// benchRow is a benchmark's line; vs, for a step sweep's variant
// (cuda/devnet's BenchmarkStepSweep), its change against its baseline.
type benchRow struct{ name, nsPerOp, rate, vs string }

type report struct {
	device  string
	tests   []*testRow
	benches []benchRow
}

var (
	resultRe = regexp.MustCompile(`^(\s*)--- (PASS|FAIL|SKIP): (\S+)(?: \(([^)]*)\))?`)
	benchRe  = regexp.MustCompile(`^(Benchmark\S+)\s+\d+\s+([\d.]+) ns/op(.*)$`)
	rateRe   = regexp.MustCompile(`([\d.]+) (GFLOP/s|GB/s)`)
	vsRe     = regexp.MustCompile(`([+-][\d.]+) %vs\[([^\]]*)\]`)
	deviceRe = regexp.MustCompile(`cuda device: (.*)$`)
	skipRe   = regexp.MustCompile(`skipping: (.*)$`)
)

func parse(r io.Reader) report {
	var rep report
	byName := map[string]*testRow{}
	lastSkip := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := deviceRe.FindStringSubmatch(line); m != nil {
			rep.device = m[1]
		}
		if m := skipRe.FindStringSubmatch(line); m != nil {
			lastSkip = m[1]
		}
		if m := benchRe.FindStringSubmatch(line); m != nil {
			rate := ""
			if rm := rateRe.FindStringSubmatch(m[3]); rm != nil {
				rate = rm[1] + " " + rm[2]
			}
			vs := ""
			if vm := vsRe.FindStringSubmatch(m[3]); vm != nil {
				vs = vm[1] + "% vs [" + vm[2] + "]"
			}
			rep.benches = append(rep.benches, benchRow{m[1], m[2], rate, vs})
			continue
		}
		m := resultRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		status, name, dur := m[2], m[3], m[4]
		top, sub, _ := strings.Cut(name, "/")
		if strings.HasPrefix(top, "Benchmark") {
			if status == "SKIP" && sub == "" {
				rep.benches = append(rep.benches, benchRow{top, "skipped", "", ""})
			}
			continue
		}
		row := byName[top]
		if row == nil {
			row = &testRow{name: top}
			byName[top] = row
			rep.tests = append(rep.tests, row)
		}
		if sub == "" {
			row.result, row.time = status, dur
			if status == "SKIP" {
				row.skipNote = lastSkip
			}
			continue
		}
		switch status {
		case "PASS":
			row.pass++
		case "FAIL":
			row.fail++
			if row.firstFail == "" {
				row.firstFail = sub
			}
		case "SKIP":
			row.skip++
		}
	}
	return rep
}

func (rep report) print(w io.Writer) (failed bool) {
	dev := rep.device
	if dev == "" {
		dev = "none visible"
	}
	fmt.Fprintf(w, "\nCUDA check — device: %s\n\n", dev)
	fmt.Fprintf(w, "%-34s %-6s %-9s %s\n", "test", "result", "time", "subtests")
	ran := 0
	for _, t := range rep.tests {
		subs := ""
		if n := t.pass + t.fail + t.skip; n > 0 {
			subs = fmt.Sprintf("%d pass, %d fail, %d skip", t.pass, t.fail, t.skip)
			if t.firstFail != "" {
				subs += " (first failure: " + t.firstFail + ")"
			}
		}
		if t.result == "FAIL" {
			failed = true
		}
		if t.result == "PASS" {
			ran++
		}
		fmt.Fprintf(w, "%-34s %-6s %-9s %s\n", t.name, t.result, t.time, subs)
	}
	if len(rep.benches) > 0 {
		sort.SliceStable(rep.benches, func(i, j int) bool { return rep.benches[i].name < rep.benches[j].name })
		// GB/s figures as a fraction of the measured device copy's.
		limit := 0.0
		for _, b := range rep.benches {
			if strings.HasPrefix(b.name, "BenchmarkDeviceCopy") {
				fmt.Sscanf(b.rate, "%g", &limit)
			}
		}
		fmt.Fprintf(w, "\n%-40s %14s  %-18s %s\n", "benchmark", "ns/op", "rate", "of copy bandwidth / against the baseline")
		for _, b := range rep.benches {
			frac := ""
			var v float64
			if limit > 0 && strings.HasSuffix(b.rate, "GB/s") {
				if _, err := fmt.Sscanf(b.rate, "%g", &v); err == nil {
					frac = fmt.Sprintf("%.0f%%", 100*v/limit)
				}
			}
			if b.vs != "" {
				frac = b.vs
			}
			fmt.Fprintf(w, "%-40s %14s  %-18s %s\n", b.name, b.nsPerOp, b.rate, frac)
		}
	}
	for _, t := range rep.tests {
		if t.result == "SKIP" && t.skipNote != "" {
			fmt.Fprintf(w, "\nskipped: %s\n", t.skipNote)
			break
		}
	}
	return failed || ran == 0 && rep.device != ""
}

func main() {
	if rep := parse(os.Stdin); rep.print(os.Stdout) {
		os.Exit(1)
	}
}
