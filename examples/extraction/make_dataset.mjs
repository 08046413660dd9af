#!/usr/bin/env node
// Synthetic training data for the photo-metadata extraction workflow (seed 004): the OCR text of a
// press photo's back and front, and the fields a model should extract from it, in the seed's
// exact text format (see examples/extraction/README.md):
//
//   <language> en <back> LINE <b> LINE ... <front> LINE <b> ... <END> <language> en <rewrite> DESCRIPTION
//   <title> TITLE <agency> AGENCY <photographer> NAME <date> DATE
//
// (one line; fields without a value are left out, as the seed leaves out agency "" and
// photographer ""). Every record is made up: a subject (an event, a portrait, a place), a
// place, maybe a date, a photographer and an agency; the back carries their stamps and a typed
// caption, the front a few words of the print, both run through OCR-like noise.
//
//   node examples/extraction/make_dataset.mjs [--out DIR] [--seed 1] [--train 2000] [--validation 200]
//
// Writes DIR/train.csv (column `text`: prompt + " " + target) and DIR/validation.csv (`text`,
// `prompt`, `target`, and one column per field: rewrite, title, agency, photographer, date; an
// absent field is an empty cell). Deterministic: the same seed and sizes give the same bytes on
// every machine. Files are written to a temporary name and renamed.
import fs from "node:fs";
import path from "node:path";

const USAGE =
  "usage: node examples/extraction/make_dataset.mjs [--out DIR] [--seed N] [--train N] [--validation N]\n" +
  "  --out DIR         where train.csv and validation.csv go (default out/extraction/data)\n" +
  "  --seed N          random seed (default 1); the same seed gives the same files, byte for byte\n" +
  "  --train N         training records (default 2000)\n" +
  "  --validation N    validation records (default 200)\n";

// ---------- arguments ----------
const opts = { out: "out/extraction/data", seed: 1, train: 2000, validation: 200 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === "--help" || argv[i] === "-h") {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const m = /^--([a-z_]+)(?:=(.*))?$/.exec(argv[i]);
  if (!m || !(m[1] in opts)) {
    process.stderr.write(`make_dataset: unknown argument ${argv[i]}\n` + USAGE);
    process.exit(2);
  }
  const v = m[2] !== undefined ? m[2] : argv[++i];
  if (v === undefined) {
    process.stderr.write(`make_dataset: --${m[1]} needs a value\n`);
    process.exit(2);
  }
  if (typeof opts[m[1]] === "number") {
    if (!/^[0-9]+$/.test(v)) {
      process.stderr.write(`make_dataset: --${m[1]} wants a non-negative integer, got ${v}\n`);
      process.exit(2);
    }
    opts[m[1]] = Number(v);
  } else {
    opts[m[1]] = v;
  }
}
if (opts.train + opts.validation === 0) {
  process.stderr.write("make_dataset: --train and --validation are both 0: nothing to write\n");
  process.exit(2);
}

// ---------- seeded random numbers (mulberry32: 32-bit integer arithmetic, the same everywhere) ----------
let state = (opts.seed ^ 0x2545f491) >>> 0;
function rand() {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const chance = (p) => rand() < p;
const pick = (arr) => arr[Math.floor(rand() * arr.length)];
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));  // inclusive
const list = (s) => s.split("|").map((x) => x.trim()).filter(Boolean);

// ---------- vocabulary (invented names; any likeness to a real agency is chance) ----------
const FIRST = list(`William|James|John|Robert|David|Thomas|George|Alexander|Andrew|Peter|Hugh|Malcolm|
  Duncan|Angus|Neil|Ian|Alan|Kenneth|Stuart|Brian|Colin|Gordon|Douglas|Frank|Harold|Arthur|Walter|
  Edward|Albert|Samuel|Mary|Margaret|Elizabeth|Jean|Agnes|Helen|Catherine|Anne|Janet|Isabel|Fiona|
  Morag|Eileen|Joan|Ruth|Sheila|Moira|Dorothy|Irene|Grace|Rose|Alice|Louise|Carol|Patricia|Susan`);
const LAST = list(`Doig|Campbell|MacLeod|Stewart|Robertson|Thomson|Anderson|Paterson|Fraser|Morrison|
  Reid|Murray|Kerr|Hamilton|Graham|Ritchie|Crawford|Muir|Baird|Lindsay|Munro|Sinclair|Dunlop|Gillespie|
  Buchanan|Galbraith|McIntyre|McKenzie|Lamont|Ferguson|Rankin|Docherty|Kirkwood|Haldane|Boyle|Hendry|
  Nisbet|Pollock|Wallace|Drummond|Harvey|Barclay|Cochrane|Lockhart|Orr|Strachan|Turnbull|Weir|Young|
  Ainslie|Blackwood|Calder|Dalgleish|Elder|Forsyth|Gourlay|Imrie|Jardine|Keir|Laing|Mowat|Naismith`);
const AGENCIES = list(`Kestrel Press Agency|Thistle Picture Service|Meridian Photo Features|
  Lowland News Pictures|Clydebank Camera Press|Harbour Light Photos|Pennant Press Bureau|
  Saltire Photo Agency|Northgate Picture Library|Heron Press Photos|Caledon Photo News|
  Westwind Picture Agency|Lanternhill Press Service|Greyfriars Photo Features|Bellrock Camera Press|
  Tweedside News Photos|Lorne Picture Service|Cairnhill Press Agency|Firthview Photo Press|
  Merchant City Pictures`);
const PLACES = [
  ["Glasgow", "Scotland", "G"], ["Edinburgh", "Scotland", "EH"], ["Aberdeen", "Scotland", "AB"],
  ["Dundee", "Scotland", "DD"], ["Inverness", "Scotland", "IV"], ["Paisley", "Scotland", "PA"],
  ["Stirling", "Scotland", "FK"], ["Perth", "Scotland", "PH"], ["Greenock", "Scotland", "PA"],
  ["Manchester", "England", "M"], ["Leeds", "England", "LS"], ["Liverpool", "England", "L"],
  ["Newcastle", "England", "NE"], ["Bristol", "England", "BS"], ["London", "England", "SW"],
  ["Carlisle", "England", "CA"], ["York", "England", "YO"], ["Cardiff", "Wales", "CF"],
  ["Swansea", "Wales", "SA"], ["Belfast", "Northern Ireland", "BT"], ["Londonderry", "Northern Ireland", "BT"],
];
const VENUES = list(`Museum and Art Galleries|City Chambers|Royal Infirmary|Central Station|Town Hall|
  Botanic Gardens|Public Library|Concert Hall|Mitchell Theatre|High School|Market Square|Victoria Park|
  Queen's Park|Cathedral|Royal Exchange|Corn Exchange|Fire Station|Harbour|Bus Station|Art School|
  Technical College|Memorial Hall|Sheriff Court|Fish Market|Ice Rink|Swimming Baths|Infirmary Chapel`);
const STREETS = list(`Netherpark|Kelvin|Argyle|Sauchiehall|Byres|Dumbarton|Pollokshaws|Maryhill|Langside|
  Victoria|Albert|Queen|Princes|George|Union|Castle|Bank|Mill|Church|Station|Park|Hill|Bridge|Market`);
const STREET_TYPES = list(`Avenue|Road|Street|Drive|Crescent|Place|Terrace|Gardens|Lane`);
const SHIPS = list(`Queen of the Isles|Loch Seaforth|Caledonian Star|Clyde Venture|Northern Light|
  Ailsa Craig|Morning Star|Iona Spirit|Highland Pride|Western Isle`);
const TEAMS = list(`Rangers|Celtic|Partick Thistle|Queen's Park|Hearts|Hibernian|Aberdeen|Dundee United|
  Motherwell|St Mirren|Kilmarnock|Morton`);
const ROLES = list(`Councillor|Dr|Professor|Lord Provost|Bailie|Sir|Mrs|Miss|Mr|Canon|Major`);
const CAUSES = list(`better housing|higher wages|the shipyards|lower rents|peace|new schools|the hospital`);
const MONTHS = list(`January|February|March|April|May|June|July|August|September|October|November|December`);
// Stamps and notes that say nothing about the fields.
const OTHER_STAMPS = list(`NOT TO BE REPRODUCED WITHOUT PERMISSION|FOR PRESS USE ONLY|RETURN TO LIBRARY|
  REPRODUCTION FEE PAYABLE|INDEPENDENT|PLEASE RETURN|FILE COPY|B/W|EXCLUSIVE|PICTURE DESK|
  NO REPRODUCTION WITHOUT CREDIT|ARCHIVE COPY`);
const JUNK = list(`ME|RES|:::|..|IN|ll|Il|-|'|NO.|x|i|OF|::|TH|.,|1|//|AN|E`);

const upper = (s) => s.toUpperCase();

// ---------- records ----------
function person() {
  const first = pick(FIRST), last = pick(LAST);
  return { first, last, name: `${first} ${last}` };
}

// A date of the record: year only, month and year, or a full date (with `null`: none).
function recordDate() {
  if (chance(0.12)) return null;
  const year = int(1931, 1998), month = int(1, 12);
  const kind = pick(["year", "year", "year", "month", "day", "day"]);
  const day = int(1, 28);
  const target = kind === "year" ? `${year}` : kind === "month" ? `${MONTHS[month - 1]} ${year}` : `${day} ${MONTHS[month - 1]} ${year}`;
  return { year, month, day, kind, target };
}

// How the date appears on a stamp or in pencil on the back.
function dateStamp(d) {
  const mon = upper(MONTHS[d.month - 1]);
  const yy = String(d.year % 100).padStart(2, "0");
  if (d.kind === "year") return pick([`${d.year}`, `${d.year}`, `${d.year}: :::`, `c. ${d.year}`, `'${yy}`]);
  if (d.kind === "month") return pick([`${mon} ${d.year}`, `${mon.slice(0, 3)} ${d.year}`, `${d.month}/${d.year}`]);
  return pick([`${d.day} ${mon.slice(0, 3)} ${d.year}`, `${d.day} ${mon} ${d.year}`, `${mon.slice(0, 3)} ${d.day} ${d.year}`,
               `${d.day}.${d.month}.${yy}`, `${d.day} ${mon.slice(0, 3)}. ${yy}`]);
}

// The subject: title, caption sentence (the description's core) and a venue (or null).
function subject(city) {
  const venue = pick(VENUES);
  const p = person();
  const named = `${pick(ROLES)} ${p.name}`;
  switch (pick(["portrait", "portrait", "opening", "fire", "flood", "sport", "launch", "protest", "snow", "award", "visit"])) {
    case "portrait":
      return { title: upper(p.name), caption: `${named} pictured at the ${venue}`, venue: `${venue}, ${city}`, words: [upper(p.last)] };
    case "opening":
      return { title: `Opening of the ${venue}`, caption: `${named} opens the new ${venue}`, venue: `${venue}, ${city}`, words: ["OPENING", upper(venue)] };
    case "fire":
      return { title: `Fire at the ${venue}`, caption: `Firemen fight the blaze at the ${venue}`, venue: `${venue}, ${city}`, words: ["FIRE", upper(venue)] };
    case "flood": {
      const street = `${pick(STREETS)} ${pick(STREET_TYPES)}`;
      return { title: `Flooding in ${city}`, caption: `Cars stranded in ${street} after heavy rain`, venue: null, words: ["FLOOD", upper(street)] };
    }
    case "sport": {
      const a = pick(TEAMS);
      let b = pick(TEAMS);
      if (b === a) b = TEAMS[(TEAMS.indexOf(a) + 1) % TEAMS.length];
      return { title: `${a} v ${b}`, caption: `${a} score against ${b}`, venue: null, words: [upper(a), "V", upper(b)] };
    }
    case "launch": {
      const ship = pick(SHIPS);
      return { title: `Launch of the ${ship}`, caption: `The ${ship} goes down the slipway, launched by ${named}`, venue: null, words: ["LAUNCH", upper(ship)] };
    }
    case "protest": {
      const cause = pick(CAUSES);
      return { title: `March in ${city}`, caption: `Marchers calling for ${cause} pass the ${venue}`, venue: `${venue}, ${city}`, words: ["MARCH", upper(cause)] };
    }
    case "snow":
      return { title: `Snow in ${city}`, caption: `Children sledging in ${pick(["Victoria Park", "Queen's Park", "the Botanic Gardens", "Kelvingrove Park"])}`, venue: null, words: ["SNOW"] };
    case "award":
      return { title: `Award for ${p.name}`, caption: `${named} receives the ${pick(["Freedom of the City", "gold medal", "long service award", "Civic Trust award"])}`, venue: `${venue}, ${city}`, words: ["AWARD", upper(p.last)] };
    default:
      return { title: `Royal visit to ${city}`, caption: `The Duchess meets ${named} at the ${venue}`, venue: `${venue}, ${city}`, words: ["ROYAL", "VISIT"] };
  }
}

function makeRecord() {
  const [city, country, post] = pick(PLACES);
  const s = subject(city);
  const date = recordDate();
  const photographer = chance(0.55) ? person() : null;
  const agency = chance(0.5) ? pick(AGENCIES) : null;
  // The description as the seed writes it: "DATE - CAPTION: Country, City. Venue."
  const rewrite = `${date ? date.target + " - " : ""}${s.caption}: ${country}, ${city}.${s.venue ? " " + s.venue + "." : ""}`;
  return { city, country, post, s, date, photographer, agency,
           fields: { rewrite, title: s.title, agency: agency ?? "", photographer: photographer?.name ?? "", date: date?.target ?? "" } };
}

// ---------- OCR ----------
const LOOKALIKE = { O: "0", "0": "O", I: "1", "1": "I", l: "1", S: "5", "5": "S", B: "8", E: "F", G: "C", C: "(", e: "c", a: "o", n: "m", u: "v", ",": ".", ".": ",", ":": ";" };

// Character noise at `rate`: a lookalike, a dropped character, a doubled one.
function garble(text, rate) {
  let out = "";
  for (const c of text) {
    if (!chance(rate)) { out += c; continue; }
    const r = rand();
    if (r < 0.5 && LOOKALIKE[c] !== undefined) out += LOOKALIKE[c];
    else if (r < 0.8) continue;
    else out += c + c;
  }
  return out;
}

// The end of a stamp cut off (the print's edge): "AVENUE" -> "AVENU".
const cut = (text) => (text.length > 8 && chance(0.5) ? text.slice(0, text.length - int(1, 3)) : text);

// A caption typed over several lines of 18-34 characters.
function wrap(text) {
  const words = text.split(" ");
  const lines = [];
  let line = "";
  const width = int(18, 34);
  for (const w of words) {
    if (line && line.length + 1 + w.length > width) { lines.push(line); line = w; } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(line);
  return lines;
}

function photographerStamp(r) {
  const p = r.photographer, name = upper(p.name);
  const address = [`${int(2, 240)} ${upper(pick(STREETS))} ${upper(pick(STREET_TYPES))}`,
                   `${upper(r.city)} ${r.post}${int(1, 44)} ${int(1, 9)}${pick(list("AB|DX|HW|XW|NP|QT|JL"))}`];
  switch (int(0, 4)) {
    case 0: return [`${name} (NUJ ${String(int(1, 99)).padStart(2, "0")}:`, cut(address[0]), address[1], upper(r.country),
                    `0${int(31, 99)}-${int(200, 999)}-${String(int(0, 9999)).padStart(4, "0")}`];
    case 1: return [`PHOTO BY ${name}`];
    case 2: return [`© ${p.name}`, address[1]];
    case 3: return [`PHOTOGRAPH: ${name}`, cut(address[0])];
    default: return [`${name} PHOTOGRAPHY`, address[1], `TEL. ${int(200, 999)} ${String(int(0, 9999)).padStart(4, "0")}`];
  }
}

function agencyStamp(agency) {
  const a = upper(agency);
  return pick([[a], [`${a} LTD`], [`PLEASE CREDIT`, a], [`COPYRIGHT ${a}`], [a, `REF. NO. ${int(100, 9999)}`]]);
}

// The back: stamps in some order, the typed caption as one block, a few notes; noise on each line
// (less on the date stamp: a digit lost there would leave a date no reader could recover).
function backLines(r) {
  const blocks = [];
  const block = (lines, rate = 0.02) => blocks.push({ lines, rate });
  if (r.photographer) block(photographerStamp(r));
  if (r.agency) block(agencyStamp(r.agency));
  if (r.date) block([dateStamp(r.date)], 0.005);
  const caption = wrap(chance(0.5) ? upper(r.s.caption) : r.s.caption);
  block(caption);
  if (r.s.venue && chance(0.5)) block([r.s.venue]);
  // The city is on the back somewhere (a stamp's address, the venue line, or under the caption),
  // so the description's place can be read from the text.
  const mentioned = blocks.some((b) => b.lines.some((l) => upper(l).includes(upper(r.city))));
  if (chance(0.6) || !mentioned) caption.push(r.city);
  for (let n = int(0, 2); n > 0; n--) block([chance(0.5) ? cut(pick(OTHER_STAMPS)) : `${int(10, 9999)}/${pick(list("A|B|C|D|X"))}`]);
  // Shuffle the blocks (Fisher-Yates), keeping each block's lines together.
  for (let i = blocks.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [blocks[i], blocks[j]] = [blocks[j], blocks[i]];
  }
  const lines = blocks.flatMap((b) => b.lines.map((l) => garble(l, b.rate)));
  if (chance(0.3)) lines.splice(int(0, lines.length), 0, pick(JUNK));
  return lines;
}

// The front: a few words of the print (a caption strip, a sign, the year), mostly mangled.
function frontLines(r) {
  const lines = [];
  for (let n = int(1, 4); n > 0; n--) {
    const k = rand();
    if (k < 0.35) lines.push(pick(JUNK));
    else if (k < 0.75) lines.push(garble(pick(r.s.words), 0.15));
    else if (k < 0.9 && r.date) lines.push(`${r.date.year}${pick(["", ":", ": :::", " ."])}`);
    else lines.push(garble(upper(r.city), 0.1));
  }
  return lines.filter((l) => l.trim() !== "").map((l) => l.trim());
}

// OCR lines never hold the format's own markup.
const clean = (l) => l.replace(/[<>]/g, "").replace(/\s+/g, " ").trim();

function render(r) {
  const back = backLines(r).map(clean).filter(Boolean);
  let front = frontLines(r).map(clean).filter(Boolean);
  if (!front.length) front = [pick(JUNK)];
  const prompt = `<language> en <back> ${back.join(" <b> ")} <front> ${front.join(" <b> ")} <END>`;
  let target = `<language> en <rewrite> ${r.fields.rewrite} <title> ${r.fields.title}`;
  for (const f of ["agency", "photographer", "date"]) if (r.fields[f]) target += ` <${f}> ${r.fields[f]}`;
  return { prompt, target, text: `${prompt} ${target}` };
}

// ---------- build ----------
const seen = new Set();
function records(n) {
  const out = [];
  while (out.length < n) {
    const r = makeRecord();
    const t = render(r);
    if (seen.has(t.prompt)) continue;  // every prompt once, across both files
    seen.add(t.prompt);
    out.push({ ...t, fields: r.fields });
  }
  return out;
}
const train = records(opts.train);
const validation = records(opts.validation);

const csvField = (s) => (/[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s);
const csv = (header, rows) => [header, ...rows].map((row) => row.map(csvField).join(",")).join("\n") + "\n";
function writeAtomic(file, text) {
  fs.writeFileSync(file + ".tmp", text);
  fs.renameSync(file + ".tmp", file);
}

const FIELDS = ["rewrite", "title", "agency", "photographer", "date"];
fs.mkdirSync(opts.out, { recursive: true });
writeAtomic(path.join(opts.out, "train.csv"), csv(["text"], train.map((r) => [r.text])));
writeAtomic(path.join(opts.out, "validation.csv"),
            csv(["text", "prompt", "target", ...FIELDS], validation.map((r) => [r.text, r.prompt, r.target, ...FIELDS.map((f) => r.fields[f])])));

const all = [...train, ...validation];
const present = FIELDS.map((f) => `${f} ${all.filter((r) => r.fields[f]).length}`).join(", ");
const longest = Math.max(...all.map((r) => r.text.length));
console.log(`make_dataset: ${train.length} train and ${validation.length} validation records in ${opts.out} (seed ${opts.seed})`);
console.log(`  fields present: ${present} of ${all.length}; longest text ${longest} characters`);
