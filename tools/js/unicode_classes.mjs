// The Unicode letter and number classes (\p{L}, \p{N}) as this Node's
// regular expressions see them — the engine transformers.js splits text
// with — for distill/core/tokenizer's pre-tokenizer (Go's unicode package
// is a version or two behind: Unicode 15.0 in Go 1.26).
//
//   cd tools/js && node unicode_classes.mjs
//
// writes core/tokenizer/unicode_classes.json: inclusive code point ranges.
// Do not edit the output by hand; rerun (make goldens) with a newer Node.

import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "..", "core", "tokenizer", "unicode_classes.json");

function ranges(re) {
  const found = [];
  let start = -1;
  for (let cp = 0; cp <= 0x10ffff; cp++) {
    const hit = !(cp >= 0xd800 && cp <= 0xdfff) && re.test(String.fromCodePoint(cp));
    if (hit && start < 0) start = cp;
    if (!hit && start >= 0) {
      found.push([start, cp - 1]);
      start = -1;
    }
  }
  if (start >= 0) found.push([start, 0x10ffff]);
  return found;
}

const table = {
  generator: "tools/js/unicode_classes.mjs",
  unicode: process.versions.unicode,
  node: process.versions.node,
  letter: ranges(/\p{L}/u),
  number: ranges(/\p{N}/u),
};
writeFileSync(out, JSON.stringify(table) + "\n");
console.log(`wrote ${out}: Unicode ${table.unicode}, ${table.letter.length} letter and ${table.number.length} number ranges`);
