// Reads the GGUF files that `go test ./core/gguf -run TestLlamaCppReadsExport
// -args -prepare DIR` wrote, with Ollama itself (built from its Go module by
// `make tools-ollama`), and writes core/gguf/testdata/ollama.json: for each
// f32 torchref fixture, Ollama's log-probs of the first token after each of
// a few prompts (its top 20); for each real tokenizer with a chat template,
// the export's Modelfile as Ollama reads it — the conversations it renders
// through the TEMPLATE, and its parameters. OLLAMA_NEW_ENGINE=1 runs every architecture
// on Ollama's own Go engine — an implementation independent of llama.cpp,
// whose reading tools/llamacpp checks directly — and the server's log is
// checked for the llama.cpp runner, which must not have run.
import {spawn, execFileSync} from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

const [bin, dir, outPath] = process.argv.slice(2);
if (!bin || !dir || !outPath) {
  console.error("usage: node ollama_goldens.mjs OLLAMA_BIN CASES_DIR OUT.json");
  process.exit(2);
}
const manifest = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));

// ASCII prompts (one byte, one token, in the fixtures' byte tokenizer), the
// longest past Llama 3's rope-scaling window of 64 positions.
const PROMPTS = [
  "Hello, world",
  "The quick brown fox jumps over the lazy dog.",
  "a",
  "{\"name\": \"distill\", \"version\": 3, \"tags\": [\"gguf\", \"ollama\"]}",
  "In a hole in the ground there lived a hobbit. Not a nasty, dirty, wet hole, filled with the ends of worms and an oozy smell, nor yet a dry, bare, sandy hole.",
  "0123456789 +-*/ ()[]{} <>=!? ~`@#$%^&|\\ ;:'\",.",
  "Once upon a time, there was",
  "x = f(y) + 2; return x",
];

// A free port, asked of the kernel.
const port = await new Promise((resolve) => {
  const s = net.createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
});
const work = fs.mkdtempSync(path.join(os.tmpdir(), "ollama-goldens-"));
const host = `127.0.0.1:${port}`;
// None of the caller's Ollama settings (a KV cache type, flash attention…).
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("OLLAMA_")));
Object.assign(env, {OLLAMA_HOST: host, OLLAMA_MODELS: path.join(work, "models"), OLLAMA_NEW_ENGINE: "1"});
const log = fs.openSync(path.join(work, "serve.log"), "w");
const server = spawn(bin, ["serve"], {env, stdio: ["ignore", log, log]});
const api = (p, body) => fetch(`http://${host}${p}`, body && {method: "POST", body: JSON.stringify(body)}).then((r) => r.json());

let version;
for (let i = 0; i < 100 && !version; i++) {
  try { version = (await api("/api/version")).version; } catch { await new Promise((r) => setTimeout(r, 100)); }
}
if (!version) {
  server.kill();
  console.error(fs.readFileSync(path.join(work, "serve.log"), "utf8"));
  throw new Error("ollama serve did not answer");
}

const cases = {};
try {
  for (const c of manifest) {
    if (c.modelfile) {
      execFileSync(bin, ["create", c.name, "-f", path.join(dir, c.modelfile)], {env, stdio: "ignore"});
      const rendered = [];
      for (const messages of c.chats) {
        const r = await api("/api/chat", {model: c.name, messages, stream: false, _debug_render_only: true});
        if (r.error) throw new Error(`${c.name}: ${r.error}`);
        rendered.push(r._debug_info.rendered_template);
      }
      const show = await api("/api/show", {model: c.name});
      cases[c.name] = {sha256: c.sha256, modelfile_sha256: c.modelfile_sha256, rendered, parameters: show.parameters};
      console.log(c.name, rendered.length, "conversations rendered");
      continue;
    }
    if (!c.fixture || c.base || c.type !== "f32") continue;
    const modelfile = path.join(work, `Modelfile.${c.name}`);
    fs.writeFileSync(modelfile, `FROM ${path.join(dir, c.file)}\n`);
    execFileSync(bin, ["create", c.name, "-f", modelfile], {env, stdio: "ignore"});
    const prompts = [];
    for (const prompt of PROMPTS) {
      const r = await api("/api/generate", {
        model: c.name, prompt, raw: true, stream: false, logprobs: true, top_logprobs: 20,
        options: {temperature: 0, num_predict: 1, seed: 0},
      });
      if (r.error) throw new Error(`${c.name}: ${r.error}`);
      // A first token that is an incomplete UTF-8 byte is held back with
      // its log-probs: such a prompt answers nothing.
      const top = (r.logprobs?.[0]?.top_logprobs ?? []).map((t) => ({bytes: t.bytes, logprob: t.logprob}));
      prompts.push({prompt, top});
    }
    cases[c.name] = {sha256: c.sha256, prompts};
    console.log(c.name, prompts.map((p) => p.top.length).join(" "), "log-probs");
  }
} finally {
  server.kill();
}
const serveLog = fs.readFileSync(path.join(work, "serve.log"), "utf8");
fs.rmSync(work, {recursive: true, force: true});
if (serveLog.includes("llama_model_loader")) {
  throw new Error("a model ran on Ollama's llama.cpp runner, not its own engine: the goldens would check llama.cpp twice");
}
const out = {
  generator: "tools/ollama/ollama_goldens.mjs",
  reference: `Ollama ${version} (its own Go engine, OLLAMA_NEW_ENGINE=1; f16 KV cache), built from github.com/ollama/ollama`,
  cases,
};
fs.writeFileSync(outPath, JSON.stringify(out, null, 1) + "\n");
