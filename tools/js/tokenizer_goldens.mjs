// Golden token ids for distill/core/tokenizer, from transformers.js
// (@lenml/tokenizers) on the real Qwen3, Llama 3 and Llama 2 tokenizer files.
//
//   cd tools/js && npm ci && node tokenizer_goldens.mjs
//
// writes core/tokenizer/testdata/goldens_<name>.json. The Go tests load the
// same tokenizer.json files from node_modules and must reproduce every id.
// Do not edit the output by hand; change the corpus here and rerun.
//
// Left out of the corpus on purpose: U+FEFF and U+0085, where JavaScript's
// \s and the Oniguruma \s used by HF tokenizers disagree (distill follows
// HF), and lone surrogates, which Go strings cannot hold.

import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { TokenizerLoader } from "@lenml/tokenizers";

const here = dirname(fileURLToPath(import.meta.url));
const outDir = join(here, "..", "..", "core", "tokenizer", "testdata");
const pkgVersion = JSON.parse(
  readFileSync(join(here, "node_modules", "@lenml", "tokenizers", "package.json"), "utf8"),
).version;

const names = ["qwen3", "llama3", "llama2"];

const paragraph =
  "The quick brown fox jumps over the lazy dog. Tokenizers split text into " +
  "pieces that a language model can embed; byte-level BPE never meets an " +
  "unknown character, while SentencePiece falls back to bytes for rare ones.";

const code = [
  "package main",
  "",
  'import "fmt"',
  "",
  "func main() {",
  "\tfor i := 0; i < 10; i++ {",
  '\t\tfmt.Printf("%d\\n", i*i)',
  "\t}",
  "}",
  "",
].join("\n");

const python = [
  "def fib(n: int) -> int:",
  '    """Return the n-th Fibonacci number."""',
  "    if n < 2:",
  "        return n",
  "    a, b = 0, 1",
  "    for _ in range(n - 1):",
  "        a, b = b, a + b",
  "    return b",
  "",
].join("\n");

// Each string is encoded by every tokenizer, with and without special tokens.
const corpus = [
  "",
  " ",
  "  ",
  "\n",
  "\t",
  "\r\n",
  "a",
  "A",
  "1",
  "!",
  "é",
  "中",
  "🙂",
  "Hello world",
  " Hello",
  "Hello ",
  "Hello\n",
  "Hello, world! How's it going? I'm fine; you'll see.",
  "THEY'RE HERE. WE'VE GOT IT. HE'D SAY SHE'LL COME, IT'S ME, DON'T.",
  "'s 'S 'll 'LL 'Ll 're 'RE 've 'm 'd 't rock'n'roll ''quoted'' 'hello'",
  "  leading spaces and trailing spaces   ",
  "a  b   c    d\n\n\n  e \t f",
  "   \n\t  ",
  "tabs\tand\t\ttabs\n\nnew lines\r\nwindows\r\n\r\nend\n",
  "line one\nline two\n\n\nline five   \n   indented\n",
  "1234567 and 12 and 1234 and 3.14159 and 1,000,000 and 007",
  " 123 456 1 2 3 10th 2nd 3rd 2024-01-15T10:30:00Z +49 (0)30 1234-5678",
  "Unicode: café naïve résumé façade Ünïcödé Ångström",
  "Combining: e\u0301 a\u0308 n\u0303 o\u0302\u0323 \u1100\u1161\u11a8",
  "你好，世界！今天天气很好。",
  "日本語のテキストとカタカナ、ひらがな。",
  "한국어 텍스트입니다.",
  "Русский текст, ελληνικά, עברית, العربية, हिन्दी, ไทย",
  "Mixed: English中文日本語한국어Русский123",
  "Emoji: 👍 🎉🎉 👨‍👩‍👧‍👦 🏳️‍🌈 👋🏽 ❤️ 🦙🧬",
  "Rare: 𠜎𠜱𠝹𠱓 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ꙮ ᚠᚢᚦ",
  "Symbols: ∑∫√∞≠≤≥ ±×÷ °C €100 £50 ¥1000 ₹ © ® ™",
  "Numbers: ٣٤٥ १२३ ①②③ Ⅻ ½ ²³",
  // Letters and digits of Unicode 15.1 and 16 (past Go's unicode tables):
  // CJK Extension I, Garay letters and digits, Todhri, Sunuwar.
  "x\u{2EBF0}'s \u{2EBF1}\u{2EBF2}'ll",
  "a\u{10D40}1234 \u{10D50}\u{10D51}\u{10D52}\u{10D53}",
  "\u{10D5A}\u{10D5B}\u{10D5C}'re \u{105C0}\u{105C1}'ve \u{11BC0}\u{11BC1}",
  "zero\u200bwidth\u200cnon\u200djoiner",
  "spaces:\u00a0nbsp\u2003em\u3000ideographic\u2028line\u2029para",
  "control\u0007bell\u0001soh\u001besc",
  "...!!!???---***///\\\\|||",
  "a.b,c;d:e(f)[g]{h}<i>",
  "https://example.com/path?q=1&r=2#frag user@example.org",
  '{"key": "value", "n": [1, 2, 3], "nested": {"ok": true}}',
  '<div class="x">Hello &amp; bye</div>',
  "# Title\n\n- item 1\n- item 2\n\n**bold** _italic_ `code`\n",
  code,
  python,
  paragraph,
  "the the the the",
  "a".repeat(35),
  "ab".repeat(40),
  "pneumonoultramicroscopicsilicovolcanoconiosis",
  "supercalifragilisticexpialidocious".repeat(12),
  "x".repeat(600),
  "▁already▁has▁metaspace ▁",
  "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
  "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n",
  "<think>\nreasoning here\n</think>\n\nanswer",
  "<tool_call>{\"name\": \"f\"}</tool_call>",
  "text<|endoftext|>text",
  "<|endoftext|>",
  "<|im_start",
  "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>",
  "<|begin_of_text|>",
  "<|end_of_text|> trailing",
  "<|reserved_special_token_5|>x<|reserved_special_token_50|>",
  "<s>[INST] Hello [/INST] Hi </s><s>[INST] again [/INST]",
  "<s>",
  "</s>",
  "<unk>",
  "a</s>b <s> c",
];

for (const name of names) {
  const dir = join(here, "node_modules", "@lenml", `tokenizer-${name}`, "models");
  const tokenizer = TokenizerLoader.fromPreTrained({
    tokenizerJSON: JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8")),
    tokenizerConfig: JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8")),
  });
  const decode = (ids, skip) =>
    ids.length === 0
      ? ""
      : tokenizer.decode(ids, { skip_special_tokens: skip, clean_up_tokenization_spaces: false });
  const cases = corpus.map((text) => {
    const ids = tokenizer.encode(text, { add_special_tokens: false });
    const idsSpecial = tokenizer.encode(text, { add_special_tokens: true });
    for (const id of [...ids, ...idsSpecial]) {
      if (!Number.isInteger(id)) throw new Error(`${name}: non-integer id for ${JSON.stringify(text)}`);
    }
    return {
      text,
      ids,
      ids_special: idsSpecial,
      decoded: decode(idsSpecial, false),
      decoded_skip: decode(idsSpecial, true),
    };
  });
  const out = {
    tokenizer: name,
    generator: "tools/js/tokenizer_goldens.mjs",
    reference: `@lenml/tokenizers ${pkgVersion} (transformers.js)`,
    decode_options: "clean_up_tokenization_spaces=false",
    cases,
  };
  mkdirSync(outDir, { recursive: true });
  const path = join(outDir, `goldens_${name}.json`);
  writeFileSync(path, JSON.stringify(out, null, 1) + "\n");
  console.log(`${path}: ${cases.length} cases`);
}
