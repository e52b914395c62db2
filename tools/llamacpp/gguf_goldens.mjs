// Reads the GGUF files that `go test ./core/gguf -run TestLlamaCppReadsExport
// -args -prepare DIR` wrote, with llama.cpp itself (node-llama-cpp's prebuilt
// CPU build), and writes core/gguf/testdata/llamacpp.json: for each torchref
// fixture (or a LoRA adapter over one), llama.cpp's log-probs of the fixture's
// token ids; for each real
// tokenizer, llama.cpp's tokenization of the tokenizer goldens' texts; for
// both, llama.cpp's special tokens. Then it runs llama_quantize.py, which
// writes llama_quantize.json beside OUT.json: llama-quantize's own files for
// the quantised cases, and ggml's quantisation of a set of rows.
import {execFileSync} from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import {getLlama} from "node-llama-cpp";

const dir = process.argv[2];
const outPath = process.argv[3];
if (!dir || !outPath) {
  console.error("usage: node gguf_goldens.mjs CASES_DIR OUT.json");
  process.exit(2);
}
const manifest = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const pkg = JSON.parse(fs.readFileSync(new URL("./node_modules/node-llama-cpp/package.json", import.meta.url), "utf8"));

function logSoftmax(logits) {
  let mx = -Infinity;
  for (const l of logits) mx = Math.max(mx, l);
  let sum = 0;
  for (const l of logits) sum += Math.exp(l - mx);
  const lse = mx + Math.log(sum);
  return logits.map((l) => l - lse);
}

// llama.cpp's view of the file's special tokens, beside distill's in the
// manifest: its EOS, whether it prepends BOS, and which of the ids distill
// stops generating at stop llama.cpp too.
function ends(model, c) {
  return {
    eos: model.tokens.eos,
    add_bos: model.tokens.shouldPrependBosToken,
    eog: (c.eos_ids ?? []).map((id) => model.isEogToken(id)),
  };
}

const cases = {};
for (const c of manifest) {
  const modelPath = path.join(dir, c.file);
  const g = {sha256: c.sha256};
  if (c.fixture) {
    // An adapter case loads its base and applies the adapter on top.
    const model = await llama.loadModel({modelPath: c.base ? path.join(dir, c.base) : modelPath, gpuLayers: 0});
    // f32 KV cache and no flash attention: the keys and values stay f32,
    // as distill keeps them, so only the weights' type shapes the products.
    const ctx = await model.createContext({
      contextSize: 512, batchSize: 512, threads: 2, flashAttention: false,
      experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
      ...(c.base ? {lora: {adapters: [{filePath: modelPath, scale: 1}]}} : {}),
    });
    const seq = ctx.getSequence();
    const res = await seq.controlledEvaluate(c.ids.map((t) => [t, {generateNext: {logits: true}}]));
    const V = model.fileInfo.metadata[model.fileInfo.metadata.general.architecture].vocab_size;
    const dist = res.map((r) => {
      const row = new Array(V).fill(-Infinity);
      for (const [id, l] of r.next.logits) row[id] = l;
      return logSoftmax(row);
    });
    g.logprobs = c.ids.slice(1).map((t, i) => dist[i][t]);
    g.last_logprobs = dist[dist.length - 1];
    if (!c.base) Object.assign(g, ends(model, c));
    await ctx.dispose();
    await model.dispose();
  } else {
    const model = await llama.loadModel({modelPath, vocabOnly: true});
    g.tokens = c.texts.map((t) => Array.from(model.tokenize(t, true)));
    Object.assign(g, ends(model, c));
    await model.dispose();
  }
  cases[c.name] = g;
  console.log(c.name, c.fixture ? `${g.logprobs.length} log-probs` : `${g.tokens.length} texts`);
}
const out = {
  generator: "tools/llamacpp/gguf_goldens.mjs",
  reference: `llama.cpp ${JSON.parse(fs.readFileSync(new URL("./node_modules/node-llama-cpp/llama/binariesGithubRelease.json", import.meta.url), "utf8")).release} via node-llama-cpp ${pkg.version} (prebuilt CPU build)`,
  cases,
};
fs.writeFileSync(outPath, JSON.stringify(out, null, 1) + "\n");
// llama-quantize through ctypes (Python's standard library; the goldens
// already need Python for tools/torchref).
execFileSync(process.env.PYTHON || "python3",
  [new URL("./llama_quantize.py", import.meta.url).pathname, dir, path.join(path.dirname(outPath), "llama_quantize.json")],
  {stdio: ["ignore", "inherit", "pipe"]});
console.log("llama_quantize.json written");
