package app

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"distill/core/infer"
	"distill/core/model"
	"distill/core/quant"
	"distill/core/tensor"
)

func init() {
	register(command{name: "bench", usage: "[--shape smollm2-135m,qwen2.5-0.5b] [--dtype bf16] [--quant nf4] [--device cuda] — prefill/decode speed on random weights", run: runBench})
}

// runBench measures the engine on random-weight checkpoints of real shapes and
// prints each figure beside the machine's own limit (copy bandwidth, sgemm).
func runBench(env *Env, args []string) error {
	fs := newFlags(env, "bench", "[--shape NAMES] [--dtype bf16|f16|f32] [--prefill N] [--decode N]")
	shapes := fs.String("shape", "smollm2-135m", "comma-separated model shapes: "+shapeNames())
	dtName := fs.String("dtype", "bf16", "weight dtype: bf16, f16 or f32")
	prefill := fs.Int("prefill", 128, "prompt tokens for the prefill measurement")
	decode := fs.Int("decode", 64, "tokens for the decode measurement")
	decodeCtx := fs.Int("decode-context", 16, "positions already cached when decode starts: short, decode measures the weights; long, attention over the KV cache too")
	kvF32 := fs.Bool("kv-f32", false, "with --cpu-bf16: hold the KV cache in f32, not bf16 (the same results; to measure what the bf16 cache buys)")
	trainSeq := fs.Int("train-seq", 0, "time LoRA (r=16) training steps at this sequence length instead of inference")
	keep := fs.Bool("keep-activations", false, "with --train-seq: keep every layer's activations (grad_checkpointing: false) instead of recomputing them in the backward")
	quantName := fs.String("quant", "none", "quantise the base first (nf4, q8, none; with --train-seq nf4 is QLoRA)")
	device := fs.String("device", "cpu", "inference backend: cpu, or cuda where this binary has it (the device-resident forward pass, else op by op; GPU training steps are cuda/devnet's BenchmarkStep)")
	offloadFlag := fs.String("cpu-offload", "0", "with --device: run the first N decoder layers on the CPU, or auto (as serve's --cpu-offload)")
	cpuBF16 := addCPUBF16Flag(fs)
	cache := fs.String("cache", model.BenchDir(), "folder for the generated random checkpoints")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *decodeCtx < 1 {
		return fmt.Errorf("--decode-context %d: want 1 or more positions", *decodeCtx)
	}
	offload, err := parseOffload(*offloadFlag)
	if err != nil {
		return err
	}
	dt, err := tensor.ParseDType(strings.ToUpper(*dtName))
	if err != nil {
		return fmt.Errorf("--dtype: %v", err)
	}
	if *device != "cpu" && *trainSeq > 0 {
		return fmt.Errorf("--train-seq times the CPU trainer; a GPU's training steps are timed by cuda/devnet's BenchmarkStep (make cuda-check)")
	}
	be, err := tensor.Open(*device)
	if err != nil {
		return fmt.Errorf("--device: %w", err)
	}
	be = withCPUBF16(be, *cpuBF16, env.Stdout)
	bw := tensor.MeasureCopyBandwidth()
	sgemm := tensor.MeasureSgemmGFLOPS()
	peak, peakName := sgemm, "sgemm" // prefill's limit
	fmt.Fprintf(env.Stdout, "machine: %d threads, copy bandwidth %.1f GB/s, sgemm peak %.0f GFLOP/s", tensor.Threads, bw/1e9, sgemm)
	if *cpuBF16 && tensor.BF16ProductsFast() && (dt == tensor.BF16 && *quantName == "none" || *quantName == "nf4") {
		peak, peakName = tensor.MeasureBF16GFLOPS(), "bf16 GEMM"
		kernel := "--cpu-bf16"
		if tensor.AMX() {
			kernel += ", AMX"
		}
		fmt.Fprintf(env.Stdout, ", bf16 GEMM peak %.0f GFLOP/s (%s)", peak, kernel)
	}
	fmt.Fprintln(env.Stdout)
	onCPU := *device == "cpu"
	if !onCPU { // the CPU's limits do not bound it: figures stand alone
		fmt.Fprintf(env.Stdout, "device: %s\n", *device)
	}
	for _, name := range strings.Split(*shapes, ",") {
		_, ok := model.Shapes[name]
		if !ok {
			return fmt.Errorf("--shape: unknown shape %q (known: %s)", name, shapeNames())
		}
		m, err := model.LoadRandom(*cache, name, dt)
		if err != nil {
			return err
		}
		if _, err := quant.QuantizeModel(m, *quantName, *quantName == "nf4", false); err != nil {
			m.Close()
			return err
		}
		sbe := be // this shape's backend
		if !onCPU {
			m.CPULayers = min(offload, len(m.Layers))
			switch ok, err := m.Accelerate(*device); {
			case !ok && m.CPULayers >= len(m.Layers):
				fmt.Fprintf(env.Stdout, "every layer and the LM head on the CPU: %v\n", err)
				sbe = withCPUBF16(tensor.CPU{}, *cpuBF16, nil)
				m.CPULayers = 0 // every layer on sbe, as serve runs them
			case !ok:
				fmt.Fprintf(env.Stdout, "op by op: %v\n", err)
			case m.CPULayers > 0:
				fmt.Fprintf(env.Stdout, "device-resident forward pass over layers %d–%d (their weights and KV cache on %s), the first %d on the CPU\n", m.CPULayers, len(m.Layers)-1, *device, m.CPULayers)
			default:
				fmt.Fprintf(env.Stdout, "device-resident forward pass (weights and KV cache on %s)\n", *device)
			}
		}
		if *trainSeq > 0 { // alone in the process, so peak RSS is training's own
			fmt.Fprintf(env.Stdout, "%s %s, base quantised %s\n", name, dt, *quantName)
			err := benchTrain(env.Stdout, sbe, m, *trainSeq, 16, 3, *keep, peak, peakName)
			m.Close()
			if err != nil {
				return err
			}
			continue
		}
		m.KVCacheBF16 = tensor.AttentionBF16(sbe) && !*kvF32 // as serve holds it
		if err := m.CheckContext(*decodeCtx + *decode); err != nil {
			m.Close()
			return fmt.Errorf("--decode-context %d with --decode %d: %w", *decodeCtx, *decode, err)
		}
		r, err := benchModel(sbe, m, *prefill, *decode, *decodeCtx)
		if err != nil {
			m.Close()
			return err
		}
		bytesTok := float64(m.DecodeBytesPerToken())
		fmt.Fprintf(env.Stdout, "%s %s, quant %s (%.0fM params, %.0f MB read per decoded token)\n", name, dt, *quantName, float64(r.params)/1e6, bytesTok/1e6)
		if onCPU {
			fmt.Fprintf(env.Stdout, "  prefill %4d tokens: %8.1f tokens/s  (%.0f GFLOP/s, %.0f%% of %s peak)\n", *prefill, r.prefillTPS, r.prefillGFLOPS, 100*r.prefillGFLOPS/peak, peakName)
			fmt.Fprintf(env.Stdout, "  decode  %4d tokens: %8.1f tokens/s  (%.1f GB/s of weights, %.0f%% of copy bandwidth)\n", *decode, r.decodeTPS, r.decodeTPS*bytesTok/1e9, 100*r.decodeTPS*bytesTok/bw)
			if *decodeCtx > 16 { // the cache read a token, at the decode's mean position
				kv := float64(infer.CacheBytesPerPosition(m)) * float64(*decodeCtx+*decode/2)
				fmt.Fprintf(env.Stdout, "    after %d positions: + %.0f MB of KV cache read a token (%s), %.1f GB/s of weights and cache, %.0f%% of copy bandwidth\n",
					*decodeCtx, kv/1e6, map[bool]string{false: "f32", true: "bf16"}[m.KVCacheBF16], r.decodeTPS*(bytesTok+kv)/1e9, 100*r.decodeTPS*(bytesTok+kv)/bw)
			}
		} else {
			fmt.Fprintf(env.Stdout, "  prefill %4d tokens: %8.1f tokens/s  (%.0f GFLOP/s)\n", *prefill, r.prefillTPS, r.prefillGFLOPS)
			fmt.Fprintf(env.Stdout, "  decode  %4d tokens: %8.1f tokens/s  (%.1f GB/s of weights)\n", *decode, r.decodeTPS, r.decodeTPS*bytesTok/1e9)
			if *decodeCtx > 16 && m.Attached() { // the device's mirror of the cache read a token, at the decode's mean position
				bf16 := model.DeviceKVBF16(m.Config.HeadDim)
				kv := float64(deviceKVBytesPerPosition(m, bf16)) * float64(*decodeCtx+*decode/2)
				fmt.Fprintf(env.Stdout, "    after %d positions: + %.0f MB of KV cache read a token (%s on the device), %.1f GB/s of weights and cache\n",
					*decodeCtx, kv/1e6, map[bool]string{false: "f32", true: "bf16"}[bf16], r.decodeTPS*(bytesTok+kv)/1e9)
			}
		}
		fmt.Fprintf(env.Stdout, "  peak RSS: %.0f MB\n", float64(peakRSS())/1e6)
		m.Close()
	}
	return nil
}

// deviceKVBytesPerPosition is the keys and values of one position the
// device-resident decoder mirrors: the layers it holds, in bf16 or f32.
func deviceKVBytesPerPosition(m *model.Model, bf16 bool) int64 {
	el := int64(4)
	if bf16 {
		el = 2
	}
	return 2 * el * int64(m.Config.NumKVHeads*m.Config.HeadDim) * int64(len(m.Layers)-m.CPULayers)
}

type benchResult struct {
	params                               int64
	prefillTPS, prefillGFLOPS, decodeTPS float64
}

// benchModel times a prompt of nPrefill tokens (best of three), then nDecode
// tokens decoded after ctx positions of it.
func benchModel(be tensor.Backend, m *model.Model, nPrefill, nDecode, ctx int) (benchResult, error) {
	var r benchResult
	cfg := m.Config
	ids := make([]int, max(nPrefill, ctx))
	for i := range ids {
		ids[i] = (i*7919 + 13) % cfg.VocabSize
	}
	// Matmul parameters per token (what prefill's FLOPs scale with).
	for _, L := range m.Layers {
		for _, t := range L.Projections() {
			r.params += int64(t.Rows() * t.Cols())
		}
	}
	r.params += int64(m.LMHead.Elems())
	logits := make([]float32, cfg.VocabSize)
	best := time.Duration(1 << 62)
	for rep := 0; rep < 3; rep++ {
		c := m.NewCache(nPrefill + nDecode)
		t0 := time.Now()
		h, err := m.Forward(be, ids[:nPrefill], c, nil)
		if err != nil {
			return r, err
		}
		m.Logits(be, logits, h[len(h)-cfg.HiddenSize:], 1)
		best = min(best, time.Since(t0))
	}
	r.prefillTPS = float64(nPrefill) / best.Seconds()
	r.prefillGFLOPS = 2 * float64(r.params-int64(m.LMHead.Elems())) * r.prefillTPS / 1e9

	c := m.NewCache(ctx + nDecode)
	for p := 0; p < ctx; p += 512 { // in chunks, as serve prefills a long prompt
		if _, err := m.Forward(be, ids[p:min(ctx, p+512)], c, nil); err != nil {
			return r, err
		}
	}
	c.FreeWorkspace()
	hidden := make([]float32, cfg.HiddenSize)
	id := ids[0]
	t0 := time.Now()
	for i := 0; i < nDecode; i++ {
		h, err := m.Forward(be, []int{id}, c, hidden)
		if err != nil {
			return r, err
		}
		m.Logits(be, logits, h, 1)
		id = (id + 1) % cfg.VocabSize
	}
	r.decodeTPS = float64(nDecode) / time.Since(t0).Seconds()
	return r, nil
}

// peakRSS is the process's high-water resident set (VmHWM), in bytes.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func shapeNames() string {
	names := make([]string, 0, len(model.Shapes))
	for n := range model.Shapes {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
