package idp

import (
	"bufio"
	"encoding/json"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"distill/core/jsonv"
)

// invoiceTargets returns the compact JSON targets of the invoice example's
// validation set (keys in schema order, as the data package writes them).
func invoiceTargets(t testing.TB) []string {
	t.Helper()
	f, err := os.Open("../../../examples/invoices/val.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var row struct {
			Target json.RawMessage `json:"target"`
		}
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatal(err)
		}
		v, err := jsonv.Parse(row.Target)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(v.AppendCompact(nil)))
	}
	return out
}

func invoiceGrammar(t testing.TB) *Grammar {
	schema, err := os.ReadFile("../../../examples/invoices/schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return mustCompile(t, string(schema))
}

// replay feeds the tokens of text, timing each mask; it fails if a token is
// not allowed.
func replay(t testing.TB, g *Grammar, text string, times []time.Duration) []time.Duration {
	return replayIDs(t, g, qwen3(t).Encode(text, false), times)
}

func replayIDs(t testing.TB, g *Grammar, ids []int, times []time.Duration) []time.Duration {
	tok := qwen3(t)
	st := g.Start()
	mask := make([]uint64, g.MaskWords())
	for i, id := range ids {
		t0 := time.Now()
		st.Mask(mask)
		times = append(times, time.Since(t0))
		if mask[id>>6]&(1<<(id&63)) == 0 {
			t.Fatalf("%q: token %d %q at %d not allowed after %q", tok.Decode(ids, false), id, g.vocab.bytes[id], i, tok.Decode(ids[:i], false))
		}
		if err := st.Advance(id); err != nil {
			t.Fatal(err)
		}
	}
	if !st.Closed() {
		t.Fatalf("%q: not complete", tok.Decode(ids, false))
	}
	return times
}

func TestReplayInvoiceTargets(t *testing.T) {
	g := invoiceGrammar(t)
	var times []time.Duration
	for _, text := range invoiceTargets(t) {
		times = replay(t, g, text, times)
	}
	slices.Sort(times)
	t.Logf("%d masks: p50 %v p90 %v p99 %v max %v", len(times), times[len(times)/2], times[len(times)*9/10], times[len(times)*99/100], times[len(times)-1])
}

func reportPercentiles(b *testing.B, times []time.Duration) {
	slices.Sort(times)
	var sum time.Duration
	for _, d := range times {
		sum += d
	}
	b.ReportMetric(float64(times[len(times)/2].Nanoseconds()), "p50-ns/mask")
	b.ReportMetric(float64(times[len(times)*99/100].Nanoseconds()), "p99-ns/mask")
	b.ReportMetric(float64(times[len(times)-1].Nanoseconds()), "max-ns/mask")
	b.ReportMetric(float64(sum.Nanoseconds())/float64(len(times)), "mean-ns/mask")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkMask times Mask at every step of a realistic decode: the 50
// validation targets of examples/invoices, tokenized with Qwen3's tokenizer
// as a model would emit them (5354 masks per op).
func BenchmarkMask(b *testing.B) {
	g := invoiceGrammar(b)
	targets := invoiceTargets(b)
	replay(b, g, targets[0], nil) // warm the per-tokenizer summaries
	var times []time.Duration
	for b.Loop() {
		times = times[:0]
		for _, text := range targets {
			times = replay(b, g, text, times)
		}
	}
	reportPercentiles(b, times)
}

// BenchmarkMaskRandomText is a harder case: decodes that pick uniformly
// among the allowed tokens (strings full of CJK, partial UTF-8, escapes).
func BenchmarkMaskRandomText(b *testing.B) {
	g := invoiceGrammar(b)
	rng := rand.New(rand.NewPCG(11, 12))
	var seqs [][]int
	for range 10 {
		st := g.Start()
		mask := make([]uint64, g.MaskWords())
		var ids []int
		for len(ids) < 300 && !st.Closed() {
			st.Mask(mask)
			id := pickAllowed(mask, rng)
			if err := st.Advance(id); err != nil {
				b.Fatal(err)
			}
			ids = append(ids, id)
		}
		seqs = append(seqs, ids)
	}
	var times []time.Duration
	for b.Loop() {
		times = times[:0]
		for _, ids := range seqs {
			times = replayIDs(b, g, ids, times)
		}
	}
	reportPercentiles(b, times)
}

// BenchmarkCompile compiles the invoice schema (the tokenizer's index is
// already built: see BenchmarkVocabIndex).
func BenchmarkCompile(b *testing.B) {
	schema, err := os.ReadFile("../../../examples/invoices/schema.json")
	if err != nil {
		b.Fatal(err)
	}
	tok := qwen3(b)
	vocabFor(tok)
	for b.Loop() {
		if _, err := Compile(schema, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVocabIndex builds the per-tokenizer index (token trie, one-byte
// tokens, the root string summary): once per tokenizer, then cached.
func BenchmarkVocabIndex(b *testing.B) {
	tok := qwen3(b)
	for b.Loop() {
		buildVocab(tok)
	}
}
