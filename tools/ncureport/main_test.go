package main

import (
	"os"
	"strings"
	"testing"
)

// testdata/attn.csv is `ncu --csv --page raw`'s layout (a header, a row of
// units, a row a kernel) amid the profiled program's output, the forward
// profiled twice with one launch.
func TestReportFromRawCSV(t *testing.T) {
	f, err := os.Open("testdata/attn.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ks, err := parse(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != 3 {
		t.Fatalf("parsed %d kernels, want 3", len(ks))
	}
	ks = dedupe(ks)
	if len(ks) != 2 || ks[0].name != "k_fa_fwd<128, 8, true>" || ks[1].name != "k_fa_bwd_dkv<128, true, false>" {
		t.Fatalf("kernels after dedupe: %+v", names(ks))
	}
	fwd, dkv := ks[0].report(), ks[1].report()
	for _, want := range []string{
		"time: 124.0 µs",                   // the last profile of the two
		"251 registers", "69.0 KiB shared", // 69.63 Kbyte dynamic + 1,024 bytes static
		"blocks/SM by registers 1, by shared 3",
		"pipes (% of peak): tensor_op_hmma 23.9, lsu (inst) 14.5", // alu's 0.5 under 1 %
		"240000 bank conflicts (2.0 %)",
		"stalls (cycles per issued instruction): short_scoreboard 3.2, barrier 1.7, long_scoreboard 0.8\n",
	} {
		if !strings.Contains(fwd, want) {
			t.Errorf("forward's report lacks %q:\n%s", want, fwd)
		}
	}
	if !strings.Contains(dkv, "stalls (cycles per issued instruction): barrier 4.5, short_scoreboard 2.2, long_scoreboard 0.3\n") {
		t.Errorf("dk/dv's stalls not ranked (sleeping's 0.01 left out):\n%s", dkv)
	}
	if !strings.Contains(dkv, "(10.0 %)") {
		t.Errorf("dk/dv's conflicts not 10 %% of wavefronts:\n%s", dkv)
	}
}

// A second header starts afresh with its own units; nanoseconds become µs.
func TestParseSecondHeader(t *testing.T) {
	in := strings.Join([]string{
		`"ID","Kernel Name","Block Size","Grid Size","gpu__time_duration.sum"`,
		`"","","","","usecond"`,
		`"0","void k(int)","(32, 1, 1)","(1, 1, 1)","2.5"`,
		`"ID","Kernel Name","Block Size","Grid Size","gpu__time_duration.sum"`,
		`"","","","","nsecond"`,
		`"0","nvjet_hsh_256x128_64x4_1x2_h_bz_coopA_NTN","(384, 1, 1)","(66, 2, 1)","1,500"`,
	}, "\n")
	ks, err := parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(ks) != 2 || ks[0].name != "k" || ks[1].name != "nvjet_hsh_256x128_64x4_1x2_h_bz_coopA_NTN" {
		t.Fatalf("kernels: %v", names(ks))
	}
	if ks[0].micros() != 2.5 || ks[1].micros() != 1.5 {
		t.Errorf("times %v, %v µs; want 2.5, 1.5", ks[0].micros(), ks[1].micros())
	}
}

func names(ks []kernel) []string {
	var out []string
	for _, k := range ks {
		out = append(out, k.name)
	}
	return out
}
