#!/usr/bin/env node
// A small labelled entailment set built from Brown corpus sentences: an offline stand-in for MNLI
// (NOT MNLI; see examples/entailment/README.md for what it is and what it cannot show).
//
//   node examples/entailment/make_dataset.mjs [--brown data/brown/brown_all.csv] [--out DIR]
//        [--seed 1] [--train_premises 1000] [--validation_premises 100]
//
// Every premise is one Brown sentence and gets three hypotheses, one per label, as MNLI's
// annotators wrote three per premise:
//   entailment    the premise shortened (a trailing clause or prepositional phrase dropped, an
//                 opening connective dropped) and/or lightly paraphrased (a synonym from a small
//                 list, "X said Y" -> "according to X, Y", an intensifier dropped);
//   contradiction the premise with its main-clause verb negated ("was" -> "was not", "said" ->
//                 "did not say", "has" -> "does not have"; an already negated premise loses its
//                 "not"/"never"/"n't"), then shortened like the entailment;
//   neutral       either a neighbouring Brown sentence of the same passage (on topic, neither
//                 implied nor denied), or the premise with an unsupported detail added (an adjective
//                 before a noun, or a time/place/reason phrase at the end).
// Writes, in the Hugging Face glue/mnli export shape {"premise","hypothesis","label","idx"} with
// GLUE's label order 0 entailment, 1 neutral, 2 contradiction:
//   DIR/train.jsonl, DIR/validation.jsonl   (shuffled; labels exactly balanced; the validation
//                                            premises come from other passages than train's)
//   DIR/train_meta.jsonl, validation_meta.jsonl  ({"idx","kind","line"}: how each row was made)
//   DIR/pretrain.csv                          (column `text`: the Brown sentences of passages that
//                                              give no validation row and were not used in train, for
//                                              pretraining the language model)
// Deterministic for a given --seed and input. Files are written to a temp name and renamed.
import fs from "node:fs";
import path from "node:path";

// ---------- arguments ----------
const opts = { brown: "data/brown/brown_all.csv", out: "out/entailment/data", seed: 1,
               train_premises: 1000, validation_premises: 100, block: 100, per_block: 3,
               min_words: 6, max_words: 20 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const m = /^--([a-z_]+)(?:=(.*))?$/.exec(argv[i]);
  if (!m || !(m[1] in opts)) {
    console.error(`make_dataset: unknown argument ${argv[i]}\nusage: make_dataset.mjs [--brown CSV] ` +
                  "[--out DIR] [--seed N] [--train_premises N] [--validation_premises N]");
    process.exit(2);
  }
  const v = m[2] !== undefined ? m[2] : argv[++i];
  if (v === undefined) { console.error(`make_dataset: ${argv[i - 1]} needs a value`); process.exit(2); }
  opts[m[1]] = typeof opts[m[1]] === "number" ? Number(v) : v;
  if (typeof opts[m[1]] === "number" && !(Number.isInteger(opts[m[1]]) && opts[m[1]] >= 0)) {
    console.error(`make_dataset: --${m[1]} wants a non-negative integer, got ${v}`);
    process.exit(2);
  }
}

// ---------- seeded random numbers (mulberry32; the same on every machine) ----------
function rng(seed) {
  let a = (seed ^ 0x9e3779b9) >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = rng(opts.seed);
const pick = (arr) => arr[Math.floor(rand() * arr.length)];
function shuffle(arr) {
  for (let i = arr.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [arr[i], arr[j]] = [arr[j], arr[i]];
  }
  return arr;
}

// ---------- CSV (RFC 4180: quotes, "" inside) ----------
function parseCsv(text) {
  const rows = [];
  let row = [], field = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') { field += '"'; i++; } else quoted = false;
      } else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { row.push(field); field = ""; }
    else if (c === "\n" || c === "\r") {
      if (c === "\r" && text[i + 1] === "\n") i++;
      row.push(field); rows.push(row); row = []; field = "";
    } else field += c;
  }
  if (field !== "" || row.length) { row.push(field); rows.push(row); }
  return rows.filter((r) => !(r.length === 1 && r[0] === ""));
}
const csvField = (s) => (/[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s);

function writeAtomic(file, text) {
  fs.writeFileSync(file + ".tmp", text);
  fs.renameSync(file + ".tmp", file);
}

// ---------- word lists ----------
const set = (s) => new Set(s.split(/\s+/).filter(Boolean));
const pairs = (s) => new Map(s.split(/\s+/).filter(Boolean).map((p) => p.split(":")));

// Scanning for the main verb stops at these: what follows them is a subordinate clause.
const SUBORDINATORS = set(`that which who whom whose what whatever whoever if when whenever because
  although though while since after before unless until where wherever as whether than once so`);
// A verb candidate right after one of these is a noun or an infinitive ("the will", "in may", "to have").
const NOT_BEFORE_VERB = set(`the a an this that these those his her their its our my your some any no
  every each to of in on at by for with from into upon about than such another other many being been
  be having`);
const AUX_NOT = set("is was are were will would can could should may might must shall");
const HAVE_DO = pairs("has:does have:do had:did");
const DO = set("does do did");
const CONTRACTED = pairs(`wasn't:was weren't:were isn't:is aren't:are didn't:did doesn't:does don't:do
  couldn't:could wouldn't:would can't:can cannot:can won't:will hasn't:has haven't:have hadn't:had
  shouldn't:should mustn't:must ain't:is`);
const PARTICIPLES = set(`been done gone seen taken given made known shown found told said come become
  begun brought kept held stood run written met heard built sent spent won fallen grown drawn thrown
  worn chosen spoken broken driven risen sought taught caught bought fought sat paid meant left lost
  led put set got gotten felt thought had let read cut hit understood`);
// Past tenses that are rarely anything else, with their base forms ("said" -> "did not say").
const IRREGULAR_PAST = pairs(`said:say went:go took:take made:make came:come gave:give told:tell
  knew:know thought:think became:become began:begin brought:bring kept:keep held:hold stood:stand
  ran:run wrote:write met:meet heard:hear built:build sent:send spent:spend won:win fell:fall
  grew:grow drew:draw threw:throw wore:wear chose:choose spoke:speak broke:break drove:drive
  rose:rise sought:seek taught:teach caught:catch bought:buy fought:fight sat:sit paid:pay
  meant:mean got:get saw:see found:find felt:feel led:lead lost:lose understood:understand
  wanted:want looked:look asked:ask seemed:seem turned:turn started:start moved:move needed:need
  reached:reach tried:try followed:follow received:receive walked:walk passed:pass
  considered:consider added:add decided:decide happened:happen worked:work continued:continue
  opened:open appeared:appear stopped:stop carried:carry described:describe served:serve lived:live
  reported:report returned:return learned:learn played:play suggested:suggest covered:cover
  filled:fill dropped:drop prepared:prepare raised:raise entered:enter accepted:accept caused:cause
  produced:produce changed:change allowed:allow offered:offer died:die announced:announce
  finished:finish proposed:propose watched:watch picked:pick studied:study recognized:recognize
  presented:present created:create reduced:reduce agreed:agree believed:believe pulled:pull
  stayed:stay treated:treat expressed:express remembered:remember pointed:point killed:kill
  planned:plan proved:prove mentioned:mention removed:remove selected:select formed:form
  observed:observe failed:fail discovered:discover stated:state helped:help explained:explain
  waited:wait ordered:order completed:complete occurred:occur discussed:discuss stared:stare
  realized:realize talked:talk arrived:arrive liked:like refused:refuse enjoyed:enjoy smiled:smile
  joined:join answered:answer improved:improve called:call showed:show developed:develop
  loved:love hoped:hope laughed:laugh nodded:nod shouted:shout wished:wish`);
const PRESENT_3SG = pairs(`says:say seems:seem makes:make takes:take goes:go comes:come gives:give
  knows:know thinks:think wants:want needs:need looks:look means:mean becomes:become
  remains:remain includes:include requires:require provides:provide shows:show believes:believe
  holds:hold keeps:keep feels:feel lives:live works:work likes:like gets:get finds:find
  tells:tell contains:contain depends:depend appears:appear`);
// Words that make dropping a modifier unsafe (downward-entailing contexts: "no one came in the
// morning" does not entail "no one came").
const DOWNWARD = set(`not never no nobody nothing none neither nor without few little only hardly
  scarcely seldom rarely every all each any if unless n't`);

// Light paraphrase: one synonym swap (both directions where both are words of the language).
const SYNONYMS = pairs(`began:started started:began begin:start start:begin big:large large:big
  small:little bought:purchased buy:purchase purchase:buy help:assist helped:assisted
  many:numerous often:frequently frequently:often quickly:rapidly rapidly:quickly children:kids
  car:automobile automobile:car answer:reply answered:replied tried:attempted try:attempt
  whole:entire entire:whole doctor:physician physician:doctor almost:nearly nearly:almost
  wealthy:rich rich:wealthy huge:enormous enormous:huge difficult:hard simple:easy
  shut:closed closed:shut sufficient:enough enough:sufficient told:informed showed:demonstrated
  said:stated stated:said afraid:frightened frightened:afraid happy:glad glad:happy
  angry:furious quiet:silent silent:quiet perhaps:maybe maybe:perhaps usually:normally
  normally:usually beautiful:lovely lovely:beautiful terrible:awful awful:terrible
  important:significant significant:important received:got obtained:got wanted:desired
  fast:quick sick:ill ill:sick speak:talk talk:speak spoke:talked talked:spoke
  finished:completed completed:finished end:finish chose:selected selected:chose
  shouted:yelled yelled:shouted aid:help job:task reply:answer`);
// Intensifiers and connectives whose removal keeps the meaning's core (in positive contexts).
const DROPPABLE = set("also very really quite extremely certainly indeed truly");
const OPENERS = set("however, moreover, furthermore, nevertheless, and but so yet then thus, therefore, still,");
const DANGLING = set(`which that who whom whose where when and but or nor a an the this these those
  his her their its my our your he she it i we they you me him them us to of in on at by for with
  from into as than if so not too also very`);
const PREPOSITIONS = set("in at on for with during after before from near into through under over across by");
// Unsupported details for neutral hypotheses.
const ADJECTIVES = `old young new local famous angry wealthy quiet tired foreign elderly nervous
  popular busy small large private public modern ancient strange careful worried proud`.split(/\s+/).filter(Boolean);
const DETAILS = `for the first time|last year|in chicago|on sunday|because of the weather|
  after the war|in the morning|for the second time|in texas|at night|without any help|
  during the summer|in new york|for a few minutes|at the end of the day|in the spring|
  before the meeting|after dinner|with great care|in secret|by accident|last week|
  in the city|every day|at home`.split("|").map((s) => s.trim()).filter(Boolean);

// ---------- sentences ----------
const words = (s) => s.split(" ");
const bare = (w) => w.replace(/,$/, "");
// A premise: plain words, commas, hyphens, apostrophes; no dash runs; a statement (not opening with
// an auxiliary, which is how Brown's questions look once their "?" is gone).
function usable(s) {
  if (!/^[a-z][a-z ,'-]*[a-z]$/.test(s) || /--|,,| ,|'' | '/.test(s)) return false;
  const w = words(s);
  if (w.length < opts.min_words || w.length > opts.max_words) return false;
  // The first word after any opening connective: no auxiliary (a question), no wh-word or
  // subordinator (a question or a subordinate clause first), no imperative marker.
  let k = 0;
  while (k < w.length - 1 && OPENERS.has(w[k])) k++;
  const first = bare(w[k]);
  if (AUX_NOT.has(first) || HAVE_DO.has(first) || DO.has(first) || CONTRACTED.has(first)) return false;
  if ((SUBORDINATORS.has(first) && first !== "that" && first !== "so") || /^(how|why|let's|please)$/.test(first))
    return false;
  return w.every((x) => bare(x).length > 0 && !/^-|-$/.test(bare(x)));
}

// Finds the main-clause verb (before any subordinator) and negates it; null when there is none.
// Returns {w: words, at: index after which the hypothesis may be cut, kind}.
function negate(w) {
  for (let i = 1; i < w.length && i < 10; i++) {
    const x = w[i], b = bare(x), comma = x.endsWith(",") ? "," : "";
    const prev = bare(w[i - 1]);
    if (SUBORDINATORS.has(b) || SUBORDINATORS.has(prev) && i > 1) return null;
    if (/^(hardly|scarcely|seldom|rarely|barely)$/.test(b)) return null;  // already negative
    if (/^(i|you|he|she|it|we|they|that|there|who)'(ve|d|s|ll|re|m)$/.test(b)) return null;  // "i've got"
    if (x !== b && !(AUX_NOT.has(b) || HAVE_DO.has(b) || DO.has(b))) continue;
    if (NOT_BEFORE_VERB.has(prev)) continue;
    const next = i + 1 < w.length ? bare(w[i + 1]) : "";
    const out = w.slice();
    if (CONTRACTED.has(b)) {
      out[i] = CONTRACTED.get(b) + comma;
      return { w: out, at: i, kind: "remove_nt" };
    }
    if (b === "never") {
      out.splice(i, 1);
      return { w: out, at: i - 1, kind: "remove_never" };
    }
    if (AUX_NOT.has(b) || HAVE_DO.has(b) || DO.has(b)) {
      if (comma) return null;
      if (next === "not" || next === "never") {
        out.splice(i + 1, 1);
        return { w: out, at: i, kind: "remove_not" };
      }
      if (HAVE_DO.has(b) && !PARTICIPLES.has(next) && !/(ed|en)$/.test(next)) {
        out.splice(i, 1, HAVE_DO.get(b), "not", "have");  // "had a car" -> "did not have a car"
        return { w: out, at: i + 2, kind: "do_not_have" };
      }
      const neg = (b === "was" || b === "were" || b === "has" || b === "had") && rand() < 0.25 ? "never" : "not";
      out.splice(i + 1, 0, neg);
      return { w: out, at: i + 1, kind: `aux_${neg}` };
    }
    if (IRREGULAR_PAST.has(b)) {
      out.splice(i, 1, "did", "not", IRREGULAR_PAST.get(b) + comma);
      return { w: out, at: i + 2, kind: "did_not" };
    }
    if (PRESENT_3SG.has(b)) {
      out.splice(i, 1, "does", "not", PRESENT_3SG.get(b) + comma);
      return { w: out, at: i + 2, kind: "does_not" };
    }
  }
  return null;
}

// Shortens after index `minAt` (the verb): cut at a comma, a coordinating "and"/"but", or the last
// prepositional phrase, keeping at least three words after the verb... or returns null.
function shorten(w, minAt, earliest = false) {
  const cuts = [];
  for (let i = Math.max(minAt + 2, 3); i < w.length - 1; i++) {
    if (w[i].endsWith(",")) cuts.push({ end: i + 1, strip: true, kind: "cut_comma" });
    const b = w[i + 1];
    // Not inside "both A and B", "between A and B", "either A or B".
    const pairing = w.slice(Math.max(0, i - 4), i + 1).some((x) => /^(both|between|either)$/.test(x));
    if ((b === "and" || b === "but") && i + 1 >= minAt + 3 && !pairing) cuts.push({ end: i + 1, kind: "cut_and" });
    if (PREPOSITIONS.has(b) && i + 1 >= minAt + 3 && w.length - (i + 1) >= 2) cuts.push({ end: i + 1, kind: "cut_pp" });
  }
  if (cuts.length === 0) return null;
  const c = cuts[0].kind === "cut_comma" || earliest ? cuts[0] : pick(cuts);
  const out = w.slice(0, c.end);
  out[out.length - 1] = bare(out[out.length - 1]);
  // No cut that leaves a dangling function word ("... materials which") or splits a noun phrase's
  // adjectives ("a thick, squashy crack").
  if (DANGLING.has(out[out.length - 1]) || (c.kind === "cut_comma" && /^(a|an|the)$/.test(out[out.length - 2] ?? "")))
    return null;
  if (out.length < 4 || out.length >= w.length) return null;
  return { w: out, kind: c.kind };
}

// Light paraphrase: one synonym, "X said Y" -> "according to X, Y", or an intensifier dropped.
function paraphrase(w) {
  const options = [];
  const said = w.findIndex((x) => x === "said");
  if (said >= 1 && said <= 4 && said < w.length - 3 &&
      w.slice(0, said).every((x) => !x.endsWith(",") && !SUBORDINATORS.has(x) && !DO.has(x) &&
                                    !AUX_NOT.has(x) && !HAVE_DO.has(x))) {
    let rest = w.slice(said + 1);
    if (rest[0] === "that") rest = rest.slice(1);
    if (rest.length >= 3)
      options.push({ w: ["according", "to", ...w.slice(0, said - 1), w[said - 1] + ",", ...rest], kind: "according_to" });
  }
  w.forEach((x, i) => {
    const b = bare(x);
    if (SYNONYMS.has(b) && !(i > 0 && bare(w[i - 1]) === "to" && /ed$/.test(SYNONYMS.get(b)))) {
      const out = w.slice();
      out[i] = SYNONYMS.get(b) + (x.endsWith(",") ? "," : "");
      options.push({ w: out, kind: "synonym" });
    }
    if (DROPPABLE.has(x) && i > 0 && i < w.length - 1) {
      const out = w.slice();
      out.splice(i, 1);
      options.push({ w: out, kind: "drop_adverb" });
    }
  });
  if (OPENERS.has(w[0]) && w.length > 5) options.push({ w: w.slice(1), kind: "drop_opener" });
  return options.length ? pick(options) : null;
}

const downward = (w) => w.some((x) => DOWNWARD.has(bare(x)) || /n't$/.test(bare(x)));

// Entailed hypothesis: shorten and/or paraphrase (never shorten in a downward-entailing context).
function entail(w) {
  const verb = mainVerbIndex(w);
  const canCut = !downward(w) && verb !== null;
  const cut = canCut ? shorten(w, verb) : null;
  const para = paraphrase(cut ? cut.w : w);
  if (cut && para && rand() < 0.4) return { w: para.w, kind: `${cut.kind}+${para.kind}` };
  if (cut && (rand() < 0.6 || !para)) return cut;
  return para;
}

// The index of the main-clause verb that negate() would change (null if none).
function mainVerbIndex(w) {
  const n = negate(w);
  if (!n) return null;
  for (let i = 0; i < w.length; i++) if (w[i] !== n.w[i]) return i;
  return w.length - 1;
}

function contradict(w) {
  const n = negate(w);
  if (!n) return null;
  if (!downward(w) && rand() < 0.6) {
    const cut = shorten(n.w, n.at, true);  // the first cut: a negated verb with "and" + verb after it would be ambiguous
    if (cut) return { w: cut.w, kind: `${n.kind}+${cut.kind}` };
  }
  return { w: n.w, kind: n.kind };
}

// Neutral: a neighbouring sentence of the passage, or the premise plus an unsupported detail.
function neutralFromDetail(w) {
  if (downward(w)) return null;  // "no one came" + "in texas" would be entailed
  const options = [];
  for (let i = 0; i < w.length - 1; i++) {
    if ((w[i] === "the" || w[i] === "a") && /^[a-z]{3,}$/.test(w[i + 1]) && !ADJECTIVES.includes(w[i + 1])) options.push(i);
  }
  const base = rand() < 0.5 ? shorten(w, mainVerbIndex(w) ?? 1)?.w ?? w : w;
  if (options.length && rand() < 0.5) {
    const i = pick(options);
    const adj = pick(ADJECTIVES);
    const art = w[i] === "a" && /^[aeiou]/.test(adj) ? "an" : w[i];
    const out = w.slice();
    out.splice(i, 1, art, adj);
    return { w: out, kind: "add_adjective" };
  }
  const out = base.slice();
  out[out.length - 1] = bare(out[out.length - 1]);
  return { w: [...out, ...pick(DETAILS).split(" ")], kind: "add_detail" };
}

function neutralFromNeighbour(lines, at, blockStart, blockEnd, premiseWords) {
  const cands = [];
  for (let j = Math.max(blockStart, at - 3); j <= Math.min(blockEnd - 1, at + 3); j++) {
    if (j === at || !usable(lines[j])) continue;
    cands.push(j);
  }
  if (!cands.length) return null;
  const j = pick(cands);
  let w = words(lines[j]);
  const cut = shorten(w, mainVerbIndex(w) ?? 1);
  if (cut && !downward(w) && rand() < 0.5) w = cut.w;
  // The same sentence twice in a passage, or a neighbour that repeats the premise, is no neutral.
  if (w.join(" ") === premiseWords.join(" ")) return null;
  return { w, kind: "neighbour", line: j };
}

const sentence = (w) => {
  const s = w.join(" ").replace(/,$/, "");
  return s.charAt(0).toUpperCase() + s.slice(1) + ".";
};

// ---------- build ----------
if (!fs.existsSync(opts.brown)) {
  console.error(`make_dataset: no ${opts.brown} (scripts/setup.sh writes it; run from the repository root or give --brown)`);
  process.exit(1);
}
const table = parseCsv(fs.readFileSync(opts.brown, "utf8"));
if (!table.length || table[0][0] !== "headline_text") {
  console.error(`make_dataset: ${opts.brown} is not brown_all.csv (first column headline_text)`);
  process.exit(1);
}
const lines = table.slice(1).map((r) => r[0].replace(/\s+/g, " ").trim());

const nBlocks = Math.ceil(lines.length / opts.block);
const blocks = shuffle([...Array(nBlocks).keys()]);
const splits = { validation: [], train: [] };
const want = { validation: opts.validation_premises, train: opts.train_premises };
const validationBlocks = new Set();
const used = new Set();  // lines in any row (premise or neighbour hypothesis)
let bi = 0;
for (const split of ["validation", "train"]) {
  while (splits[split].length < want[split] * 3 && bi < blocks.length) {
    const b = blocks[bi++];
    const start = b * opts.block, end = Math.min(lines.length, start + opts.block);
    if (split === "validation") validationBlocks.add(b);
    let taken = 0;
    for (const i of shuffle([...Array(end - start).keys()].map((k) => start + k))) {
      if (taken >= opts.per_block || splits[split].length >= want[split] * 3) break;
      if (used.has(i) || !usable(lines[i])) continue;
      const w = words(lines[i]);
      const e = entail(w), c = contradict(w);
      const n = rand() < 0.5 ? neutralFromNeighbour(lines, i, start, end, w) ?? neutralFromDetail(w)
                             : neutralFromDetail(w) ?? neutralFromNeighbour(lines, i, start, end, w);
      if (!e || !c || !n) continue;
      const hyps = [e, n, c].map((h) => sentence(h.w));
      if (new Set([sentence(w), ...hyps]).size !== 4) continue;
      if (n.line !== undefined && used.has(n.line)) continue;
      used.add(i);
      if (n.line !== undefined) used.add(n.line);
      taken++;
      [e, n, c].forEach((h, label) =>
        splits[split].push({ premise: sentence(w), hypothesis: hyps[label], label, kind: h.kind, line: i + 2 }));
    }
  }
  if (splits[split].length < want[split] * 3) {
    console.error(`make_dataset: only ${splits[split].length / 3} usable ${split} premises (wanted ${want[split]})`);
    process.exit(1);
  }
}

fs.mkdirSync(opts.out, { recursive: true });
const stats = {};
for (const [split, rows] of Object.entries(splits)) {
  shuffle(rows);
  writeAtomic(path.join(opts.out, `${split}.jsonl`), rows.map((r, idx) =>
    JSON.stringify({ premise: r.premise, hypothesis: r.hypothesis, label: r.label, idx }) + "\n").join(""));
  writeAtomic(path.join(opts.out, `${split}_meta.jsonl`), rows.map((r, idx) =>
    JSON.stringify({ idx, label: r.label, kind: r.kind, line: r.line }) + "\n").join(""));
  for (const r of rows) {
    const k = `${split} ${["entailment", "neutral", "contradiction"][r.label]} ${r.kind.split("+")[0]}`;
    stats[k] = (stats[k] || 0) + 1;
  }
}
// Pretraining text: every sentence outside the validation passages that no train row uses, in the
// rows' style (capitalised, full stop).
const pretrain = [];
lines.forEach((s, i) => {
  if (s && !used.has(i) && !validationBlocks.has(Math.floor(i / opts.block)))
    pretrain.push(s.charAt(0).toUpperCase() + s.slice(1) + ".");
});
writeAtomic(path.join(opts.out, "pretrain.csv"), "text\n" + pretrain.map(csvField).join("\n") + "\n");

console.log(`make_dataset: ${splits.train.length} train rows, ${splits.validation.length} validation rows ` +
            `(${opts.train_premises} + ${opts.validation_premises} premises, 3 hypotheses each), ` +
            `${pretrain.length} pretraining sentences, in ${opts.out} (seed ${opts.seed})`);
for (const k of Object.keys(stats).sort()) console.log(`  ${k}: ${stats[k]}`);
