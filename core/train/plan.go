package train

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"distill/core/model"
	"distill/core/tensor"
)

// KDTeacherBytes is what the CPU's logit-KD step holds for teacher t on
// micro-batches of n tokens besides its weights: its hidden states for the
// batch, one KV cache and forward workspace for a segment of up to n, and
// the loss's teacher logits and float64 gradients, a loss chunk at a time.
func KDTeacherBytes(t *model.Model, n, vocab int) int64 {
	c := t.Config
	D, F, L := int64(c.HiddenSize), int64(c.IntermediateSize), int64(len(t.Layers))
	qOut, kvOut, N := int64(c.NumHeads*c.HeadDim), int64(c.NumKVHeads*c.HeadDim), int64(n)
	hidden := N * D * 4
	cache := 2 * L * N * kvOut * 4
	forward := N * (3*D + 2*qOut + 2*F) * 4 // x, xn, o; q, att; gate, up
	rows := int64(lossRowsFor(n, vocab)) * (int64(vocab)*(4+8) + D*4)
	return hidden + cache + forward + rows
}

// Plan is training's memory, sized from the config before the first step.
// Every figure is computed from the same layout code that allocates, so it
// is a prediction of what will be allocated, not an estimate.
type Plan struct {
	Tokens      int   // tokens per micro-batch
	Weights     int64 // frozen base as held (quantized or at checkpoint dtype)
	Teacher     int64 // a KD teacher's weights where the plan holds them (the GPU's)
	TeacherActs int64 // a KD teacher's forward pass and the loss's teacher-side rows (the CPU step's)
	Adapter     int64 // LoRA parameters (f32)
	Grads       int64 // their gradients
	Optimizer   int64 // AdamW moments
	Activations int64 // layer inputs and saved activations (all layers, or one when checkpointing)
	Workspace   int64 // backward temporaries and the loss's logits chunk
	Runtime     int64 // the process before any model: Go runtime, code, tokenizer
}

// Total is the predicted peak.
func (p Plan) Total() int64 {
	return p.Weights + p.Teacher + p.TeacherActs + p.Adapter + p.Grads + p.Optimizer + p.Activations + p.Workspace + p.Runtime
}

// RuntimeBaseline is what the process holds besides the model and training
// buffers, measured on this engine (Go runtime, binary, page tables).
const RuntimeBaseline = 24 << 20

// PlanMemory sizes training of nt on micro-batches of n tokens with weights
// of weightBytes as held in memory.
func (nt *Net) PlanMemory(n int, weightBytes int64) Plan {
	params := int64(len(nt.Params)) * 4
	total := int64(nt.workspaceFloats(n, n)) * 4
	// Split the workspace into what scales with depth (activations) and the
	// rest, by laying out a one-layer-shallower copy.
	ar := &arena{}
	c := nt.M.Config
	buildWorkspace(ar, &c, n, n, nt.rank(), 0, nt.targeted(), nt.M.Arch.QKNorm, true, nt.dropping(), nt.attnMode())
	fixed := int64(ar.off) * 4
	if cpu, ok := nt.Be.(tensor.CPU); ok && cpu.BF16Products {
		// The bf16 products round their input first, into scratch the
		// kernels keep (pooled): the largest two are the LM head's
		// backward's, a loss chunk's logit gradients (rows, V), and an
		// (n, F) input of the MLP's products — in bf16 where the fast
		// kernel runs, else as f32 values.
		per := int64(2)
		if !tensor.BF16ProductsFast() {
			per = 4
		}
		widest := max(c.IntermediateSize, c.HiddenSize, c.NumHeads*c.HeadDim)
		bf16 := (int64(lossRowsFor(n, c.VocabSize))*int64(c.VocabSize) + int64(n)*int64(widest)) * per
		total, fixed = total+bf16, fixed+bf16
	}
	return Plan{Tokens: n, Weights: weightBytes, Adapter: params, Grads: params, Optimizer: 2 * params,
		Activations: total - fixed, Workspace: fixed, Runtime: RuntimeBaseline}
}

// Print writes the plan as a table.
func (p Plan) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	mb := func(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }
	fmt.Fprintf(tw, "memory plan (%d tokens per micro-batch)\n", p.Tokens)
	for _, row := range []struct {
		name string
		b    int64
	}{{"base weights", p.Weights}, {"teacher weights", p.Teacher}, {"teacher activations", p.TeacherActs}, {"adapter", p.Adapter}, {"gradients", p.Grads},
		{"optimizer (AdamW)", p.Optimizer}, {"activations", p.Activations}, {"workspace", p.Workspace}, {"runtime", p.Runtime},
		{"total", p.Total()}} {
		if row.b == 0 && strings.HasPrefix(row.name, "teacher") {
			continue
		}
		fmt.Fprintf(tw, "  %s\t%10s\n", row.name, mb(row.b))
	}
	tw.Flush()
}
