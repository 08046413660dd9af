// Prompts, batched generation, post-processing and output formats of `lmforge synth`.
#include "lmforge/synth/synthesize.h"

#include <algorithm>

#include "lmforge/error.h"

namespace lmforge::synth {

namespace {

std::string trim(std::string_view s) {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  size_t b = 0, e = s.size();
  while (b < e && space(s[b])) ++b;
  while (e > b && space(s[e - 1])) --e;
  return std::string(s.substr(b, e - b));
}

std::vector<int32_t> concat(const std::vector<int32_t>& a, const std::vector<int32_t>& b, size_t b_len) {
  std::vector<int32_t> out = a;
  out.insert(out.end(), b.begin(), b.begin() + static_cast<std::ptrdiff_t>(b_len));
  return out;
}

// The text the generated tokens add after the prompt. Decoding prompt and continuation together
// keeps characters split across the boundary (and clean-up rules) as HF's batch_decode has them.
std::string continuation_text(const Tokenizer& tok, const std::vector<int32_t>& prompt_ids,
                              const std::vector<int32_t>& generated, size_t n) {
  const std::string whole = tok.decode(concat(prompt_ids, generated, n), true);
  const std::string prompt = tok.decode(prompt_ids, true);
  if (whole.rfind(prompt, 0) == 0) return whole.substr(prompt.size());
  return tok.decode(std::vector<int32_t>(generated.begin(), generated.begin() + static_cast<std::ptrdiff_t>(n)), true);
}

// Beam search returns num_samples beams per prompt (one unit: the prompt once); sampling and greedy
// get the prompt num_samples times (num_samples units of one row each).
struct Batching {
  size_t units_per_prompt, rows_per_unit, units_per_batch;
};
Batching batching(const SynthConfig& cfg, const GenerationConfig& gen) {
  const bool beams = gen.num_beams > 1;
  const size_t samples = static_cast<size_t>(cfg.num_samples);
  const size_t rows_per_unit = beams ? samples : 1;
  return {beams ? 1 : samples, rows_per_unit, std::max<size_t>(1, static_cast<size_t>(cfg.batch_size) / rows_per_unit)};
}

// Prompts x samples, grouped into generate() calls.
struct Unit {
  size_t prompt_index;
  std::vector<int32_t> ids;
};

std::vector<int32_t> prompt_ids(const Tokenizer& tok, const GenerationConfig& gen, const std::string& text) {
  std::vector<int32_t> ids = tok.encode(text);
  if (!ids.empty()) return ids;
  if (!gen.bos_token_id) throw Error("empty prompt: set a prefix or give a prompt_file");
  return {*gen.bos_token_id};  // HF generate() with no input starts from bos
}

// generate() would say the same, but in terms of max_new_tokens, which synth users never set.
void check_context(const LanguageModel& lm, const SynthConfig& cfg, const std::vector<Unit>& units) {
  size_t longest = 0;
  for (const auto& u : units) longest = std::max(longest, u.ids.size());
  if (longest + static_cast<size_t>(cfg.max_new_tokens()) > static_cast<size_t>(lm.max_positions()))
    throw Error("the max length min_length + max_length_buffer = " + std::to_string(cfg.max_new_tokens()) + " after a " +
                std::to_string(longest) + "-token prompt needs " + std::to_string(longest + cfg.max_new_tokens()) +
                " positions, but the model's context is " + std::to_string(lm.max_positions()));
}

// ---- output text --------------------------------------------------------------------------------

// Python's json.dumps string form (ensure_ascii: non-ASCII as \uXXXX, astral planes as surrogate
// pairs), so the json output is byte-for-byte what the seed's print(json.dumps(...)) writes.
void append_python_json_string(std::string& out, const std::string& s) {
  static const char* hex = "0123456789abcdef";
  auto u_escape = [&](uint32_t cp) {
    out += "\\u";
    for (int shift = 12; shift >= 0; shift -= 4) out.push_back(hex[(cp >> shift) & 0xf]);
  };
  out.push_back('"');
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
          if (c < 0x20) u_escape(c);
          else out.push_back(static_cast<char>(c));
      }
      ++i;
      continue;
    }
    // Decode one UTF-8 sequence (decode() output is valid UTF-8; anything else becomes U+FFFD).
    const int len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    uint32_t cp = len == 4 ? c & 0x07u : len == 3 ? c & 0x0fu : c & 0x1fu;
    bool ok = len > 1 && i + static_cast<size_t>(len) <= s.size();
    for (int k = 1; ok && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + static_cast<size_t>(k)]);
      ok = (cc & 0xc0) == 0x80;
      cp = (cp << 6) | (cc & 0x3fu);
    }
    if (!ok) cp = 0xfffd;
    if (cp >= 0x10000) {
      u_escape(0xd800 + ((cp - 0x10000) >> 10));
      u_escape(0xdc00 + ((cp - 0x10000) & 0x3ff));
    } else {
      u_escape(cp);
    }
    i += ok ? static_cast<size_t>(len) : 1;
  }
  out.push_back('"');
}

std::string csv_field(const std::string& s) {
  const bool quote = s.find_first_of(",\"\r\n") != std::string::npos || (!s.empty() && (s.front() == ' ' || s.back() == ' '));
  if (!quote) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  return out + "\"";
}

std::string json_row(const SynthRow& r, PrivacyMode mode) {
  std::string line = "{\"prompt\": ";
  append_python_json_string(line, r.prompt);
  line += ", \"text\": ";
  append_python_json_string(line, r.text);
  line += ", \"tokens\": " + std::to_string(r.tokens) + ", \"stop\": \"" + to_string(r.stop) + "\"";
  if (mode == PrivacyMode::Flag) line += std::string(", \"privacy\": \"") + to_string(r.privacy.reason) + "\"";
  return line + "}";
}

std::string render_json(const std::vector<SynthRow>& rows, size_t num_prompts, PrivacyMode mode) {
  std::vector<std::vector<const SynthRow*>> per_prompt(num_prompts);
  for (const auto& r : rows)
    if (r.kept && r.prompt_index < num_prompts) per_prompt[r.prompt_index].push_back(&r);
  std::string out = "[";
  for (size_t p = 0; p < num_prompts; ++p) {
    out += p ? ", {\"sentences\": [" : "{\"sentences\": [";
    for (size_t i = 0; i < per_prompt[p].size(); ++i) {
      if (i) out += ", ";
      append_python_json_string(out, per_prompt[p][i]->text);
    }
    out += "]";
    if (mode == PrivacyMode::Flag) {
      out += ", \"privacy\": [";
      for (size_t i = 0; i < per_prompt[p].size(); ++i)
        out += std::string(i ? ", \"" : "\"") + to_string(per_prompt[p][i]->privacy.reason) + "\"";
      out += "]";
    }
    out += "}";
  }
  return out + "]\n";
}

}  // namespace

const char* to_string(StopReason r) {
  static constexpr const char* kNames[] = {"suffix", "eos", "length"};  // in enum order
  return kNames[static_cast<int>(r)];
}

Postprocessed postprocess(const Tokenizer& tok, const std::vector<int32_t>& prompt_ids,
                          const std::vector<int32_t>& generated, const std::vector<int32_t>& eos_ids,
                          const SynthConfig& cfg) {
  Postprocessed p;
  size_t n = generated.size();
  p.stop = StopReason::Length;
  for (size_t i = 0; i < generated.size(); ++i)
    if (std::find(eos_ids.begin(), eos_ids.end(), generated[i]) != eos_ids.end()) {
      n = i;
      p.stop = !cfg.suffix.empty() && tok.decode({generated[i]}) == cfg.suffix ? StopReason::Suffix : StopReason::Eos;
      break;
    }

  std::string added = continuation_text(tok, prompt_ids, generated, n);
  if (!cfg.suffix.empty()) {
    // Like the seed, the first min_length tokens never end a row (its `u.s.` stays whole).
    const size_t min_tokens = std::min(n, static_cast<size_t>(cfg.min_length));
    const size_t from = min_tokens ? continuation_text(tok, prompt_ids, generated, min_tokens).size() : 0;
    if (const size_t at = added.find(cfg.suffix, from); at != std::string::npos) {
      added.resize(at);
      p.stop = StopReason::Suffix;
      // The token that brought the suffix in (e.g. `."`) ends the row; it is not counted.
      size_t k = min_tokens + 1;
      while (k < n && continuation_text(tok, prompt_ids, generated, k).find(cfg.suffix, from) == std::string::npos) ++k;
      n = k - 1;
    }
  }
  p.tokens = static_cast<int>(n);

  std::string text = tok.decode(prompt_ids, true) + added;
  if (!cfg.prefix.empty() && text.rfind(cfg.prefix, 0) == 0) text.erase(0, cfg.prefix.size());
  p.text = trim(text);
  if (cfg.keep_suffix && p.stop == StopReason::Suffix && !p.text.empty()) p.text += cfg.suffix;
  return p;
}

size_t batch_count(const SynthConfig& cfg, const GenerationConfig& gen, size_t num_prompts) {
  const Batching b = batching(cfg, gen);
  const size_t units = std::max<size_t>(1, num_prompts) * b.units_per_prompt;
  return (units + b.units_per_batch - 1) / b.units_per_batch;
}

std::vector<SynthRow> generate_rows(const LanguageModel& lm, const Tokenizer& tok, const SynthConfig& cfg,
                                    const GenerationConfig& gen, const std::vector<std::string>& prompts,
                                    const std::function<void(const Progress&)>& on_batch, BatchRange batches) {
  const std::vector<std::string> texts = prompts.empty() ? std::vector<std::string>{""} : prompts;
  const Batching b = batching(cfg, gen);
  std::vector<Unit> units;
  for (size_t p = 0; p < texts.size(); ++p) {
    const auto ids = prompt_ids(tok, gen, cfg.prefix + texts[p]);
    for (size_t s = 0; s < b.units_per_prompt; ++s) units.push_back({p, ids});
  }
  check_context(lm, cfg, units);
  const size_t rows_per_unit = b.rows_per_unit, units_per_batch = b.units_per_batch;
  const size_t first = std::min(batches.begin, batch_count(cfg, gen, prompts.size()));
  const size_t last = std::min(batches.end, batch_count(cfg, gen, prompts.size()));

  std::vector<SynthRow> rows;
  const size_t unit_begin = std::min(units.size(), first * units_per_batch);
  const size_t unit_end = std::min(units.size(), last * units_per_batch);
  Progress progress{0, (unit_end - unit_begin) * rows_per_unit};
  for (size_t batch = first; batch < last; ++batch) {
    const size_t start = batch * units_per_batch;
    const size_t end = std::min(units.size(), start + units_per_batch);
    std::vector<std::vector<int32_t>> inputs;
    for (size_t u = start; u < end; ++u) inputs.push_back(units[u].ids);
    GenerationConfig g = gen;
    g.seed = cfg.seed + batch * 0x9e3779b97f4a7c15ull;  // batch 0 keeps the seed itself

    const GenerationOutput out = generate(lm, inputs, g);
    for (size_t r = 0; r < out.sequences.size(); ++r) {
      const Unit& unit = units[start + r / rows_per_unit];
      const auto& seq = out.sequences[r];
      const std::vector<int32_t> generated(seq.begin() + out.prompt_length, seq.end());
      const Postprocessed p = postprocess(tok, unit.ids, generated, g.eos_token_id, cfg);
      rows.push_back({unit.prompt_index, prompts.empty() ? "" : texts[unit.prompt_index], p.text, p.tokens, p.stop, {}, true});
    }
    progress.done = rows.size();
    if (on_batch) on_batch(progress);
  }
  return rows;
}

void apply_privacy_guard(const PrivacyGuard& guard, PrivacyMode mode, std::vector<SynthRow>& rows) {
  for (auto& r : rows) {
    r.privacy = guard.check(r.text);
    r.kept = mode == PrivacyMode::Flag || !r.privacy.is_copy();
  }
}

std::string render_rows(const std::vector<SynthRow>& rows, size_t num_prompts, OutputFormat format,
                        PrivacyMode mode) {
  if (format == OutputFormat::Json) return render_json(rows, num_prompts, mode);
  std::string out;
  if (format == OutputFormat::Csv)
    out = mode == PrivacyMode::Flag ? "prompt,text,tokens,stop,privacy\n" : "prompt,text,tokens,stop\n";
  for (const auto& r : rows) {
    if (!r.kept) continue;
    if (format == OutputFormat::Jsonl) {
      out += json_row(r, mode) + "\n";
      continue;
    }
    out += csv_field(r.prompt) + "," + csv_field(r.text) + "," + std::to_string(r.tokens) + "," + to_string(r.stop);
    if (mode == PrivacyMode::Flag) out += std::string(",") + to_string(r.privacy.reason);
    out += "\n";
  }
  return out;
}

}  // namespace lmforge::synth
