package idp

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"distill/core/infer"
	"distill/core/model"
	"distill/core/tensor"
	"distill/core/tokenizer"
)

var (
	tinyOnce sync.Once
	tinyM    *model.Model
	tinyTok  *tokenizer.Tokenizer
	tinyErr  error
)

// tinyModel is a random-weight Qwen3-shaped model (1 layer, hidden 32)
// with Qwen3's real tokenizer, written once per test binary.
func tinyModel(t testing.TB) (*model.Model, *tokenizer.Tokenizer) {
	t.Helper()
	qwen3(t) // fails with "run make tools" when missing
	tinyOnce.Do(func() {
		dir, err := os.MkdirTemp("", "idp-tiny-")
		if err != nil {
			tinyErr = err
			return
		}
		shape := model.Shape{Arch: "Qwen3ForCausalLM", Hidden: 32, Intermediate: 64, Layers: 1, Heads: 2, KVHeads: 1, HeadDim: 16,
			Vocab: 151936, Tied: true, RopeTheta: 1e6, RMSNormEps: 1e-6, MaxPositions: 4096, BOS: 151643, EOS: 151645}
		if tinyErr = model.WriteRandom(dir, shape, tensor.F32, 3); tinyErr != nil {
			return
		}
		for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
			if tinyErr = copyFile(filepath.Join(qwen3Dir, f), filepath.Join(dir, f)); tinyErr != nil {
				return
			}
		}
		if tinyM, tinyErr = model.Load(dir); tinyErr != nil {
			return
		}
		tinyTok, tinyErr = tokenizer.Load(dir)
	})
	if tinyErr != nil {
		t.Fatal(tinyErr)
	}
	return tinyM, tinyTok
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func TestGenerateInvoiceRandomModel(t *testing.T) {
	m, tok := tinyModel(t)
	schema, err := os.ReadFile("../../../examples/invoices/schema.json")
	if err != nil {
		t.Fatal(err)
	}
	g, err := Compile(schema, tok)
	if err != nil {
		t.Fatal(err)
	}
	prompt := tok.Encode("Extract the invoice fields as JSON.\n", false)
	// A generous budget, then budgets so small that steering must close
	// every string early.
	for i, budget := range []int{160, g.MinTokens() + 3, g.MinTokens()} {
		res, err := Generate(context.Background(), tensor.CPU{}, m, tok, g, prompt, budget, infer.Sampling{Temperature: 1, Seed: uint64(i)})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("budget %d: %d tokens, %s, %.3fs decode (%.3fs masks): %s", budget, res.CompletionTokens, res.StopReason, res.DecodeSeconds, res.MaskSeconds, res.Text)
		if !res.Valid || res.CompletionTokens > budget || res.JSON == nil {
			t.Errorf("budget %d: invalid (%d tokens): %s: %s", budget, res.CompletionTokens, res.ValidationError, res.Text)
		}
		if res.PromptTokens != len(prompt) || len(res.IDs) != res.CompletionTokens {
			t.Errorf("token counts: %+v", res)
		}
	}
	if _, err := Generate(context.Background(), tensor.CPU{}, m, tok, g, prompt, g.MinTokens()-1, infer.Sampling{}); err == nil {
		t.Error("a budget below MinTokens: no error")
	}
}

// TestGenerateGreedyTopLevelNumber: a top-level number may end at EOS or
// grow; greedy decoding stays within bounds.
func TestGenerateGreedyTopLevelNumber(t *testing.T) {
	m, tok := tinyModel(t)
	g, err := Compile([]byte(`{"type":"integer","minimum":10,"maximum":20}`), tok)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Generate(context.Background(), tensor.CPU{}, m, tok, g, tok.Encode("n=", false), 8, infer.Sampling{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Valid {
		t.Fatalf("%q: %s", res.Text, res.ValidationError)
	}
	t.Logf("%q (%s)", res.Text, res.StopReason)
}
