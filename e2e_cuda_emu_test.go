//go:build cuda && cudaemu

package main

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestDeviceRunsTrackCPU is devcheck's end-to-end comparison on the
// emulated device (`make test-cuda-emu`): the binary built with the CUDA
// backend over cuda/emu/device trains SFT, DPO and KD runs with --device
// cuda and again with --device cpu from the same demo base and data (KD's
// teacher: the base with the SFT run's adapter merged, so the student has
// something to learn), and each run's last loss and validation figures
// must agree (the device's bf16 operands: 2·10⁻³ relative); the cuda runs
// must say their steps — DPO's and KD's objectives too — ran on the device
// and report a pool peak within the plan's 15 %; and `eval classify` of the
// SFT adapter must give the same report on both devices. It proves the
// wiring a GPU run takes — device selection, the memory fit, the
// device-resident steps, the optimizer on the device, the adapter written
// back, branched scoring — not its speed.
func TestDeviceRunsTrackCPU(t *testing.T) {
	tok := qwen3Tokenizer(t)
	tmp := t.TempDir()
	bin := buildEmu(t, tmp)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		if slices.Contains(args, "train") && slices.Contains(args, "cuda") { // with step graphs, whatever their gate says
			cmd.Env = append(os.Environ(), "DISTILL_CUDA_STEP_GRAPHS=1")
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("distill %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	base := filepath.Join(tmp, "base")
	run("demo-model", "--out", base, "--tokenizer", tok)
	// Ten validation rows: scoring on the emulated device is slow.
	val, err := os.ReadFile("examples/tickets/val.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(tmp, "val10.jsonl")
	if err := os.WriteFile(small, []byte(strings.Join(strings.SplitN(string(val), "\n", 11)[:10], "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	teacher := filepath.Join(tmp, "teacher")
	for _, c := range []struct {
		method, steps string
		args          []string
		figures       []string // the last step's loss and these validation figures, compared
		onDevice      string   // what the cuda run's log says of its objective
	}{
		{"sft", "5", []string{"--data", "examples/tickets/train.jsonl"}, []string{"val_loss"}, ""},
		{"dpo", "3", []string{"--data", "examples/preferences/train.jsonl"}, []string{"val_margin", "val_accuracy"}, "DPO on cuda"},
		{"kd", "3", []string{"--data", "examples/tickets/train.jsonl", "--teacher", teacher}, []string{"val_loss"}, "logit KD on cuda"},
	} {
		if c.method == "kd" {
			run("merge", "--model", base, "--adapter", filepath.Join(tmp, "sft-cuda", "adapter"), "--out", teacher)
		}
		logs := map[string]string{}
		for _, dev := range []string{"cuda", "cpu"} {
			args := append([]string{"train", c.method, "--model", base, "--steps", c.steps, "--lr", "0.003",
				"--device", dev, "--db", filepath.Join(tmp, c.method+"-"+dev+".db"),
				"--out", filepath.Join(tmp, c.method+"-"+dev), "--checkpoint-every", "0"}, c.args...)
			logs[dev] = run(args...)
		}
		for _, want := range []string{"device-resident steps on cuda", c.onDevice} {
			if !strings.Contains(logs["cuda"], want) {
				t.Fatalf("%s --device cuda: no %q: its steps left the device\n%s", c.method, want, logs["cuda"])
			}
		}
		m := regexp.MustCompile(`device memory: peak ([\d.]+) MB in the pool, plan ([\d.]+) MB`).FindStringSubmatch(logs["cuda"])
		if m == nil {
			t.Fatalf("%s --device cuda: no device-memory line\n%s", c.method, logs["cuda"])
		}
		if peak, plan := num(t, m[1]), num(t, m[2]); peak > 1.15*plan {
			t.Errorf("%s: the pool's peak %.1f MB is past the plan's %.1f MB by more than 15 %%", c.method, peak, plan)
		}
		{ // its steps replayed, and the log says how many
			g := regexp.MustCompile(`CUDA step graphs: (\d+) of (\d+) micro-batches replayed`).FindStringSubmatch(logs["cuda"])
			if g == nil || num(t, g[1]) < 1 {
				t.Errorf("%s --device cuda with step graphs: no step replayed\n%s", c.method, logs["cuda"])
			} else {
				t.Log(g[0])
			}
		}
		for _, f := range append([]string{"loss"}, c.figures...) {
			got, want := figure(t, logs["cuda"], f), figure(t, logs["cpu"], f)
			tol := 2e-3*math.Abs(want) + 1e-4
			switch f {
			case "val_margin": // a few steps in, margins are ~0.01: the log-probs' bf16 error, absolute
				tol = 1e-3
			case "val_accuracy": // up to three of the 30 pairs held out, tied within that error, may fall either way
				tol = 0.1
			}
			if math.Abs(got-want) > tol {
				t.Errorf("%s %s: --device cuda %v, --device cpu %v", c.method, f, got, want)
			}
		}
	}

	reports := map[string]string{}
	for _, dev := range []string{"cuda", "cpu"} {
		out := run("eval", "classify", "--model", base, "--adapter", filepath.Join(tmp, "sft-cuda", "adapter"),
			"--data", small, "--device", dev, "--db", filepath.Join(tmp, "eval-"+dev+".db"))
		if strings.Contains(out, "op by op") { // the device-resident decoder declined
			t.Fatalf("eval classify --device %s left the device:\n%s", dev, out)
		}
		var lines []string
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "accuracy") || strings.Contains(l, "macro-F1") {
				lines = append(lines, strings.TrimSpace(l))
			}
		}
		if len(lines) == 0 {
			t.Fatalf("eval classify --device %s: no report\n%s", dev, out)
		}
		reports[dev] = strings.Join(lines, "\n")
	}
	if reports["cuda"] != reports["cpu"] {
		t.Errorf("eval classify: --device cuda\n%s\n--device cpu\n%s", reports["cuda"], reports["cpu"])
	}
}

// buildEmu builds the binary with the CUDA backend over the emulated
// device into dir.
func buildEmu(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "distill")
	if out, err := exec.Command("go", "build", "-tags", "cuda,cudaemu", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestServeCPUOffloadTracksCPU: `distill serve --device cuda --cpu-offload
// 1` — the first layer on the host, the device-resident decoder over the
// rest, each pass handed the host layer's output — says it loaded so and
// generates the same greedy text as `--device cpu`, over the real server.
func TestServeCPUOffloadTracksCPU(t *testing.T) {
	tmp := t.TempDir()
	bin := buildEmu(t, tmp)
	base := filepath.Join(tmp, "base")
	if out, err := exec.Command(bin, "demo-model", "--out", base, "--tokenizer", qwen3Tokenizer(t)).CombinedOutput(); err != nil {
		t.Fatalf("demo-model: %v\n%s", err, out)
	}
	texts, scores := map[string]string{}, map[string]string{}
	for _, dev := range []string{"cpu", "cuda"} {
		cmd := exec.Command(bin, "serve", "--model", base, "--device", dev, "--cpu-offload", "1", "--addr", "127.0.0.1:0")
		var log lockedBuffer
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		stop := func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }
		url := ""
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
			if url == "" {
				if m := regexp.MustCompile(`addr=(http://[\d.:]+)`).FindStringSubmatch(log.String()); m != nil {
					url = m[1]
				}
			}
			if url != "" {
				if r, err := http.Get(url + "/readyz"); err == nil {
					r.Body.Close()
					if r.StatusCode == http.StatusOK {
						break
					}
				}
			}
			if time.Now().After(deadline) {
				stop()
				t.Fatalf("serve --device %s: not ready in 2 min\n%s", dev, log.String())
			}
		}
		post := func(req string) string {
			r, err := http.Post(url+"/infer/base", "application/json", strings.NewReader(req))
			if err != nil {
				stop()
				t.Fatal(err)
			}
			body, _ := io.ReadAll(r.Body)
			r.Body.Close()
			if r.StatusCode != http.StatusOK {
				stop()
				t.Fatalf("serve --device %s: %s: %d %s", dev, req, r.StatusCode, body)
			}
			return string(body)
		}
		texts[dev] = post(`{"task":"generate","input":"My printer is out of toner","options":{"max_tokens":12,"temperature":0}}`)
		scores[dev] = post(`{"task":"classify","input":"My printer is out of toner","labels":["hardware","billing","account"]}`)
		stop()
		if want := map[string]string{"cpu": "device_resident=false cpu_layers=0", "cuda": "device_resident=true cpu_layers=1"}[dev]; !strings.Contains(log.String(), want) {
			t.Errorf("serve --device %s --cpu-offload 1: the log does not say %q\n%s", dev, want, log.String())
		}
	}
	var out [2]struct {
		Output struct {
			Text string `json:"text"`
		} `json:"output"`
	}
	for i, dev := range []string{"cpu", "cuda"} {
		if err := json.Unmarshal([]byte(texts[dev]), &out[i]); err != nil || out[i].Output.Text == "" {
			t.Fatalf("--device %s: %v in %s", dev, err, texts[dev])
		}
	}
	if out[0] != out[1] {
		t.Errorf("greedy generation: --device cpu %q, --device cuda --cpu-offload 1 %q", out[0].Output.Text, out[1].Output.Text)
	} else {
		t.Logf("both generated %q", out[0].Output.Text)
	}
	// Classification's branched passes: the labels' log-likelihoods within
	// the device's bf16 error of the host's — and not equal to them bit for
	// bit, which would mean the host ran every pass (the device full, or
	// not taking it) though the log says the decoder is attached.
	var ll [2]struct {
		Output struct {
			LogLikelihoods map[string]float64 `json:"log_likelihoods"`
		} `json:"output"`
	}
	for i, dev := range []string{"cpu", "cuda"} {
		if err := json.Unmarshal([]byte(scores[dev]), &ll[i]); err != nil || len(ll[i].Output.LogLikelihoods) != 3 {
			t.Fatalf("--device %s: %v in %s", dev, err, scores[dev])
		}
	}
	same := true
	for label, want := range ll[0].Output.LogLikelihoods {
		got := ll[1].Output.LogLikelihoods[label]
		same = same && got == want
		if math.Abs(got-want) > 1e-3*math.Abs(want)+1e-3 { // 3e-4 apart on the emulated device
			t.Errorf("%s: log-likelihood %v on cuda --cpu-offload 1, %v on cpu", label, got, want)
		}
	}
	if same {
		t.Error("cuda --cpu-offload 1 scored the labels bit for bit as the CPU: the device ran none of it")
	}
	t.Logf("log-likelihoods: cpu %v, cuda --cpu-offload 1 %v", ll[0].Output.LogLikelihoods, ll[1].Output.LogLikelihoods)
}

// lockedBuffer is a process's output, read while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// figure is the last value a run's log gives for name: "loss X" of its
// last step line, or "step N: name X".
func figure(t *testing.T, log, name string) float64 {
	t.Helper()
	re := regexp.MustCompile(`: ` + name + ` (-?[\d.]+)`)
	if name == "loss" {
		re = regexp.MustCompile(`(?m)^step \d+/\d+\s+loss (-?[\d.]+)`)
	}
	all := re.FindAllStringSubmatch(log, -1)
	if len(all) == 0 {
		t.Fatalf("no %s in\n%s", name, log)
	}
	return num(t, all[len(all)-1][1])
}

func num(t *testing.T, s string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
