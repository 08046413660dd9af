// lmforge generate: HF model.generate() from the command line. Flags carry HF's argument names.
#include <chrono>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "cli/options.h"
#include "lmforge/error.h"
#include "lmforge/generate/generate.h"
#include "lmforge/model/model.h"

namespace lmforge::cli {
namespace {

struct Args {
  std::string model, dtype = "float32";
  std::vector<std::string> prompts, prompt_ids;
  std::string prompt_file;
  std::optional<int> max_length, max_new_tokens, min_length, min_new_tokens, num_beams, num_return_sequences, top_k,
      no_repeat_ngram_size, pad_token_id, bos_token_id;
  std::vector<int> eos_token_id;
  std::optional<float> temperature, top_p, repetition_penalty, length_penalty;
  std::optional<bool> do_sample, skip_special_tokens, clean_up_tokenization_spaces;
  std::optional<std::string> early_stopping;
  std::vector<std::string> stop_strings;
  std::optional<uint64_t> seed;
  int show_choices = 0;
  bool json = false;
  int threads = 0;
} args;

void setup(CLI::App& app) {
  app.add_option("--model,-m", args.model, "HF checkpoint folder (config.json, weights, tokenizer)")->required();
  app.add_option("--prompt,-p", args.prompts, "Prompt text (repeatable: several prompts form a left-padded batch)");
  app.add_option("--prompt_file", args.prompt_file, "File with one prompt per line")->check(CLI::ExistingFile);
  app.add_option("--prompt_ids", args.prompt_ids, "Prompt as token ids, e.g. \"464 3290\" (repeatable)");
  add_optional(app, "--max_length", args.max_length, "HF max_length: total length, prompt included (default 20)");
  add_optional(app, "--max_new_tokens", args.max_new_tokens, "HF max_new_tokens: tokens to generate (wins over --max_length)");
  add_optional(app, "--min_length", args.min_length, "HF min_length: EOS is blocked before this total length");
  add_optional(app, "--min_new_tokens", args.min_new_tokens, "HF min_new_tokens: EOS is blocked before this many new tokens");
  add_bool_option(app, "--do_sample", args.do_sample, "HF do_sample: sample instead of greedy/beam search");
  add_optional(app, "--num_beams", args.num_beams, "HF num_beams: beam search width (1 = no beam search)");
  add_optional(app, "--num_return_sequences", args.num_return_sequences, "HF num_return_sequences per prompt");
  add_optional(app, "--length_penalty", args.length_penalty, "HF length_penalty: beam score = logprob / length^penalty");
  app.add_option_function<std::string>(
         "--early_stopping", [](const std::string& v) { args.early_stopping = v.empty() ? "true" : v; },
         "HF early_stopping: true | false | never (flag alone = true)")
      ->expected(0, 1);
  add_optional(app, "--temperature", args.temperature, "HF temperature for sampling");
  add_optional(app, "--top_k", args.top_k, "HF top_k: keep the k most likely tokens (0 = off; HF default 50)");
  add_optional(app, "--top_p", args.top_p, "HF top_p: nucleus sampling threshold in (0, 1]");
  add_optional(app, "--repetition_penalty", args.repetition_penalty, "HF repetition_penalty (1 = off)");
  add_optional(app, "--no_repeat_ngram_size", args.no_repeat_ngram_size, "HF no_repeat_ngram_size (0 = off)");
  app.add_option("--eos_token_id", args.eos_token_id, "HF eos_token_id (repeatable)");
  add_optional(app, "--pad_token_id", args.pad_token_id, "HF pad_token_id (default: eos_token_id)");
  add_optional(app, "--bos_token_id", args.bos_token_id, "HF bos_token_id (prompt when none is given)");
  app.add_option("--stop_strings", args.stop_strings, "HF stop_strings: stop a sequence once its text contains one");
  add_optional(app, "--seed", args.seed, "Seed of the sampling RNG (reproducible sampling)");
  app.add_option("--show_choices", args.show_choices, "Print the top-N next tokens and probabilities of each step");
  app.add_flag("--json", args.json, "Print [{prompt, sentences, ids, sequences_scores}] as JSON");
  add_bool_option(app, "--skip_special_tokens", args.skip_special_tokens, "Drop special tokens when decoding (default true)");
  add_bool_option(app, "--clean_up_tokenization_spaces", args.clean_up_tokenization_spaces,
                  "HF decode clean-up of spaces before punctuation (default: tokenizer_config.json, else false)");
  app.add_option("--threads", args.threads, "Threads (default: all cores)");
  add_dtype_option(app, args.dtype);
}

// Model config -> generation_config.json -> flags, each overriding the one before (HF order).
GenerationConfig build_config(const Model& model) {
  const ModelConfig& c = model.config();
  GenerationConfig g = generation_defaults(c.eos_token_id, c.bos_token_id, c.pad_token_id, args.model);
  if (args.max_length) g.max_length = args.max_length;
  if (args.max_new_tokens) g.max_new_tokens = args.max_new_tokens;
  if (args.min_length) g.min_length = *args.min_length;
  if (args.min_new_tokens) g.min_new_tokens = args.min_new_tokens;
  if (args.do_sample) g.do_sample = *args.do_sample;
  if (args.num_beams) g.num_beams = *args.num_beams;
  if (args.num_return_sequences) g.num_return_sequences = *args.num_return_sequences;
  if (args.length_penalty) g.length_penalty = *args.length_penalty;
  if (args.early_stopping) {
    const std::string& v = *args.early_stopping;
    if (v == "true" || v == "True") g.early_stopping = EarlyStopping::True;
    else if (v == "false" || v == "False") g.early_stopping = EarlyStopping::False;
    else if (v == "never") g.early_stopping = EarlyStopping::Never;
    else throw Error("--early_stopping: expected true, false or never, got '" + v + "'");
  }
  if (args.temperature) g.temperature = *args.temperature;
  if (args.top_k) g.top_k = *args.top_k;
  if (args.top_p) g.top_p = *args.top_p;
  if (args.repetition_penalty) g.repetition_penalty = *args.repetition_penalty;
  if (args.no_repeat_ngram_size) g.no_repeat_ngram_size = *args.no_repeat_ngram_size;
  if (!args.eos_token_id.empty()) g.eos_token_id.assign(args.eos_token_id.begin(), args.eos_token_id.end());
  if (args.pad_token_id) g.pad_token_id = args.pad_token_id;
  if (args.bos_token_id) g.bos_token_id = args.bos_token_id;
  if (!args.stop_strings.empty()) g.stop_strings = args.stop_strings;
  if (args.seed) g.seed = args.seed;
  g.validate();
  return g;
}

struct Prompt {
  std::string text;  // as given (or decoded from ids)
  std::vector<int32_t> ids;
};

std::vector<Prompt> collect_prompts(const std::optional<Tokenizer>& tok, const GenerationConfig& g) {
  auto need_tokenizer = [&](const std::string& flag) {
    if (!tok)
      throw Error(flag + ": the model folder '" + args.model +
                  "' has no tokenizer (vocab.json + merges.txt or tokenizer.json); use --prompt_ids");
  };
  std::vector<std::string> texts = args.prompts;
  if (!args.prompt_file.empty()) {
    std::ifstream in(args.prompt_file);
    if (!in) throw Error("--prompt_file: cannot read '" + args.prompt_file + "'");
    std::string line;
    size_t before = texts.size();
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) texts.push_back(line);
    }
    if (texts.size() == before) throw Error("--prompt_file: '" + args.prompt_file + "' holds no prompt");
  }
  std::vector<Prompt> prompts;
  for (const auto& t : texts) {
    need_tokenizer("--prompt");
    auto ids = tok->encode(t);
    if (ids.empty()) throw Error("--prompt: the prompt is empty");
    prompts.push_back({t, std::move(ids)});
  }
  for (const auto& s : args.prompt_ids) {
    auto ids = parse_ids(s, "--prompt_ids");
    prompts.push_back({tok ? tok->decode(ids) : s, std::move(ids)});
  }
  if (prompts.empty()) {
    // HF generate() with no input starts from bos_token_id.
    if (!g.bos_token_id) throw Error("no prompt: give --prompt, --prompt_file or --prompt_ids");
    prompts.push_back({tok ? tok->decode({*g.bos_token_id}) : "", {*g.bos_token_id}});
  }
  return prompts;
}

// Prints text as tokens arrive, holding back bytes of an unfinished UTF-8 character.
class Streamer {
 public:
  explicit Streamer(const Tokenizer& tok, bool skip_special, std::optional<bool> cleanup)
      : tok_(tok), skip_(skip_special), cleanup_(cleanup) {}
  void push(int32_t id) {
    ids_.push_back(id);
    std::string text = tok_.decode(ids_, skip_, cleanup_);
    if (text.size() >= 3 && text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0) return;  // wait for more bytes
    if (text.size() > printed_) {
      std::cout << text.substr(printed_) << std::flush;
      printed_ = text.size();
    }
  }
  void finish() {
    std::string text = tok_.decode(ids_, skip_, cleanup_);
    if (text.size() > printed_) std::cout << text.substr(printed_);
    std::cout << "\n" << std::flush;
  }

 private:
  const Tokenizer& tok_;
  bool skip_;
  std::optional<bool> cleanup_;
  std::vector<int32_t> ids_;
  size_t printed_ = 0;
};

struct StepChoices {
  std::vector<int32_t> ids;
  std::vector<float> probs;
};

StepChoices top_choices(const float* logits, int vocab, int n) {
  std::vector<float> p(logits, logits + vocab);
  float mx = *std::max_element(p.begin(), p.end());
  double sum = 0;
  for (auto& v : p) sum += (v = std::exp(v - mx));
  for (auto& v : p) v = static_cast<float>(v / sum);
  std::vector<int32_t> idx(vocab);
  for (int i = 0; i < vocab; ++i) idx[i] = i;
  n = std::min(n, vocab);
  std::partial_sort(idx.begin(), idx.begin() + n, idx.end(), [&](int a, int b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
  StepChoices c;
  for (int i = 0; i < n; ++i) {
    c.ids.push_back(idx[i]);
    c.probs.push_back(p[idx[i]]);
  }
  return c;
}

std::string token_text(const std::optional<Tokenizer>& tok, int32_t id) {
  return tok ? tok->decode({id}) : std::to_string(id);
}

void print_choices_table(const std::optional<Tokenizer>& tok, const Prompt& prompt,
                         const std::vector<StepChoices>& steps, const std::vector<int32_t>& chosen) {
  std::cout << "step\tinput\t";
  for (size_t i = 0; i < (steps.empty() ? 0 : steps[0].ids.size()); ++i) std::cout << "choice " << i << (i + 1 < steps[0].ids.size() ? "\t" : "");
  std::cout << "\n";
  std::vector<int32_t> so_far = prompt.ids;
  for (size_t s = 0; s < steps.size(); ++s) {
    std::string input = tok ? tok->decode(so_far) : std::to_string(so_far.size()) + " tokens";
    for (char& ch : input)
      if (ch == '\n' || ch == '\t') ch = ' ';
    std::cout << s << "\t" << input;
    for (size_t i = 0; i < steps[s].ids.size(); ++i) {
      std::ostringstream pct;
      pct << std::fixed << std::setprecision(2) << 100.0 * steps[s].probs[i];
      std::cout << "\t{" << token_text(tok, steps[s].ids[i]) << " (" << pct.str() << "%)}";
    }
    std::cout << "\n";
    if (s < chosen.size()) so_far.push_back(chosen[s]);
  }
}

int run() {
  apply_threads(args.threads);
  auto model = Model::load(args.model, parse_dtype(args.dtype));
  auto tok = load_tokenizer_for_model(args.model, model->vocab_size());
  GenerationConfig g = build_config(*model);
  const auto prompts = collect_prompts(tok, g);
  std::vector<std::vector<int32_t>> batch;
  for (const auto& p : prompts) batch.push_back(p.ids);
  if (args.show_choices < 0) throw Error("--show_choices must be >= 0");
  if (args.show_choices > 0 && g.num_beams > 1) throw Error("--show_choices works with greedy search or sampling, not --num_beams > 1");

  const bool skip_special = args.skip_special_tokens.value_or(true);
  const int rows = static_cast<int>(batch.size()) * (g.num_beams > 1 ? 1 : g.num_return_sequences);
  const bool stream = !args.json && tok && rows == 1 && g.num_beams == 1 && args.show_choices == 0;

  GenerationCallbacks cb;
  std::unique_ptr<Streamer> streamer;
  if (tok) cb.decode = [&](const std::vector<int32_t>& ids) { return tok->decode(ids, false, false); };  // HF matches stop strings on raw token text
  if (stream) {
    streamer = std::make_unique<Streamer>(*tok, skip_special, args.clean_up_tokenization_spaces);
    std::cout << tok->decode(batch[0], skip_special, args.clean_up_tokenization_spaces) << std::flush;
    cb.on_tokens = [&](const std::vector<int32_t>& t) { streamer->push(t[0]); };
  }
  std::vector<std::vector<StepChoices>> choices(rows);
  if (args.show_choices > 0)
    cb.on_step_logits = [&](int, int row, const float* logits, int vocab) {
      choices[row].push_back(top_choices(logits, vocab, args.show_choices));
    };

  const auto t0 = std::chrono::steady_clock::now();
  GenerationOutput out = generate(*model, batch, g, cb);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (streamer) streamer->finish();

  const int per_prompt = static_cast<int>(out.sequences.size() / prompts.size());
  size_t prompt_tokens = 0, new_tokens = 0;
  for (const auto& p : prompts) prompt_tokens += p.ids.size();
  for (const auto& s : out.sequences) {
    // Generated tokens up to and including the first EOS; the rest is padding.
    for (size_t i = out.prompt_length; i < s.size(); ++i) {
      ++new_tokens;
      if (std::find(g.eos_token_id.begin(), g.eos_token_id.end(), s[i]) != g.eos_token_id.end()) break;
    }
  }

  if (args.json) {
    nlohmann::json all = nlohmann::json::array();
    for (size_t p = 0; p < prompts.size(); ++p) {
      nlohmann::json entry{{"prompt", prompts[p].text}};
      nlohmann::json sentences = nlohmann::json::array(), ids = nlohmann::json::array(), scores = nlohmann::json::array();
      for (int k = 0; k < per_prompt; ++k) {
        const size_t r = p * per_prompt + k;
        ids.push_back(out.sequences[r]);
        if (tok) sentences.push_back(tok->decode(out.sequences[r], skip_special, args.clean_up_tokenization_spaces));
        if (!out.sequences_scores.empty()) scores.push_back(out.sequences_scores[r]);
      }
      entry["sentences"] = tok ? sentences : nlohmann::json(nullptr);
      entry["ids"] = ids;
      if (!out.sequences_scores.empty()) entry["sequences_scores"] = scores;
      if (args.show_choices > 0) {
        nlohmann::json per_seq = nlohmann::json::array();
        for (int k = 0; k < per_prompt; ++k) {
          nlohmann::json steps = nlohmann::json::array();
          for (const auto& st : choices[p * per_prompt + k]) {
            nlohmann::json toks = nlohmann::json::array();
            for (auto id : st.ids) toks.push_back(token_text(tok, id));
            steps.push_back({{"ids", st.ids}, {"tokens", toks}, {"probs", st.probs}});
          }
          per_seq.push_back(steps);
        }
        entry["choices"] = per_seq;
      }
      all.push_back(entry);
    }
    std::cout << all.dump(2) << "\n";
  } else if (!stream) {
    for (size_t p = 0; p < prompts.size(); ++p)
      for (int k = 0; k < per_prompt; ++k) {
        const size_t r = p * per_prompt + k;
        if (out.sequences.size() > 1) {
          std::cout << "=== prompt " << p << ", sequence " << k;
          if (!out.sequences_scores.empty()) std::cout << " (score " << out.sequences_scores[r] << ")";
          std::cout << " ===\n";
        }
        if (tok)
          std::cout << tok->decode(out.sequences[r], skip_special, args.clean_up_tokenization_spaces) << "\n";
        else {
          for (size_t i = 0; i < out.sequences[r].size(); ++i) std::cout << (i ? " " : "") << out.sequences[r][i];
          std::cout << "\n";
        }
        if (args.show_choices > 0) {
          std::vector<int32_t> chosen(out.sequences[r].begin() + out.prompt_length, out.sequences[r].end());
          Prompt padded{prompts[p].text, std::vector<int32_t>(out.sequences[r].begin(), out.sequences[r].begin() + out.prompt_length)};
          print_choices_table(tok, padded, choices[r], chosen);
        }
      }
  }
  std::cerr << "lmforge: " << prompt_tokens << " prompt tokens, " << new_tokens << " generated tokens in "
            << std::fixed << std::setprecision(2) << secs << " s (" << std::setprecision(1)
            << (secs > 0 ? new_tokens / secs : 0.0) << " tokens/s)\n";
  return 0;
}

Command command{"generate", "Generate text with HF generate() semantics (greedy, beam search, sampling)", setup, run};

}  // namespace
}  // namespace lmforge::cli
