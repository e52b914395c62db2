package main

import (
	"strings"
	"testing"
)

const sample = `=== RUN   TestDevice
    helpers_test.go:40: cuda device: NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)
--- PASS: TestDevice (0.20s)
=== RUN   TestRMSNormParity
=== RUN   TestRMSNormParity/1x64
--- PASS: TestRMSNormParity (0.01s)
    --- PASS: TestRMSNormParity/1x64 (0.00s)
    --- FAIL: TestRMSNormParity/3x576 (0.00s)
    --- PASS: TestRMSNormParity/17x896 (0.00s)
--- FAIL: TestRMSNormParity (0.01s)
=== RUN   TestSwiGLUParity
    elementwise_test.go:23: skipping: cuda: no CUDA device is visible
--- SKIP: TestSwiGLUParity (0.00s)
goos: linux
BenchmarkGemmBF16-16    	      20	     71234 ns/op	    62595.1 GFLOP/s
BenchmarkAttention/fwd-16         	      20	    812345 ns/op	       235.4 GFLOP/s
BenchmarkDeviceCopy-16    	      20	    200000 ns/op	      2000.0 GB/s
BenchmarkNF4MatVec-16    	      20	    2000 ns/op	      1500.0 GB/s
--- SKIP: BenchmarkAdamW
BenchmarkSweep[nohalfdy-keep]/qwen2.5-1.5b/seq2048	2	71234567 ns/op	28750 tokens/s	166000 GFLOP/s	16.80 MFU%	-1.25 %vs[base,keep=1]	0.40 %spread
PASS
`

func TestParseAndPrint(t *testing.T) {
	rep := parse(strings.NewReader(sample))
	if rep.device != "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)" {
		t.Fatalf("device %q", rep.device)
	}
	if len(rep.tests) != 3 || rep.tests[1].pass != 2 || rep.tests[1].fail != 1 || rep.tests[1].result != "FAIL" {
		t.Fatalf("tests %+v", rep.tests[1])
	}
	if len(rep.benches) != 6 || rep.benches[0].rate != "62595.1 GFLOP/s" || rep.benches[4].nsPerOp != "skipped" {
		t.Fatalf("benches %+v", rep.benches)
	}
	var b strings.Builder
	if failed := rep.print(&b); !failed {
		t.Fatal("a failed subtest must fail the table")
	}
	out := b.String()
	for _, want := range []string{"TestRMSNormParity", "2 pass, 1 fail, 0 skip (first failure: 3x576)", "BenchmarkAttention/fwd-16", "skipped: cuda: no CUDA device", "75%", "-1.25% vs [base,keep=1]"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestAllSkippedIsNotAFailure(t *testing.T) {
	rep := parse(strings.NewReader("--- SKIP: TestX (0.00s)\n"))
	if rep.print(new(strings.Builder)) {
		t.Fatal("all skipped without a device must not fail (CI has no GPU)")
	}
}
