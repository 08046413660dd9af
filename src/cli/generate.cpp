// lmforge generate: HF model.generate() from the command line. Flags carry HF's argument names.
// --benchmark_mode times generation of a fixed number of tokens instead (seed 000's
// generate_text.py --benchmark_mode --benchmark_seq_length N). --fields parses each continuation
// into the extraction workflow's fields (seed 004; lmforge/tasks/fields.h).
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "cli/distributed.h"
#include "cli/generation_flags.h"
#include "cli/options.h"
#include "lmforge/error.h"
#include "lmforge/generate/generate.h"
#include "lmforge/io/prompt_file.h"
#include "lmforge/model/model.h"
#include "lmforge/structured/constraint.h"
#include "lmforge/tasks/fields.h"

namespace lmforge::cli {
namespace {

struct Args {
  std::string model, dtype = "auto";
  std::string adapter;  // --adapter: PEFT LoRA folder applied unmerged
  std::vector<std::string> prompts, prompt_ids;
  std::string prompt_file;
  std::optional<std::string> prompt_column;
  GenerationFlags gen;  // the HF generate() flags
  std::optional<bool> skip_special_tokens, clean_up_tokenization_spaces;
  int show_choices = 0;
  bool json = false;
  bool fields = false;
  int threads = 0;
  // Benchmark mode
  bool benchmark_mode = false;
  std::optional<int> benchmark_seq_length, benchmark_warmup, benchmark_iters, batch_size;
  std::optional<std::string> benchmark_json;
  // Structured output (docs/STRUCTURED.md): at most one of them
  std::optional<std::string> json_schema, regex, grammar;
  bool json_object = false;
} args;

constexpr int kBenchmarkWarmup = 1;
constexpr int kBenchmarkIters = 3;
// The prompt of benchmark mode when none is given: seed 000's gptj_generate_text.py example.
constexpr const char* kBenchmarkPrompt = "hello i am";

void setup(CLI::App& app) {
  app.add_option("--model,-m", args.model,
                 "HF checkpoint folder (config.json, weights, tokenizer), or a Hub name (gpt2, EleutherAI/gpt-j-6b, "
                 "NAME@REVISION) already in the local Hugging Face cache; nothing is downloaded")
      ->required();
  app.add_option("--prompt,-p", args.prompts, "Prompt text (repeatable: several prompts form a left-padded batch)");
  app.add_option("--prompt_file", args.prompt_file,
                 "Prompts from a file, - = standard input: one per line, or a CSV whose first line is a header "
                 "naming a prompt or text column (see below)");
  add_optional(app, "--prompt_column", args.prompt_column,
               "The CSV column holding the prompts (default: prompt, else text)");
  app.add_option("--prompt_ids", args.prompt_ids, "Prompt as token ids, e.g. \"464 3290\" (repeatable)");
  args.gen.add(app);
  app.add_option("--show_choices", args.show_choices, "Print the top-N next tokens and probabilities of each step");
  app.add_flag("--json", args.json,
               "Print [{prompt, sentences, ids, token_logprobs | sequences_scores}] as JSON (see below)");
  app.add_flag("--fields", args.fields,
               "Print each generated continuation parsed into <title> ... <date> ... fields, one JSON object per "
               "line (see below)");
  add_bool_option(app, "--skip_special_tokens", args.skip_special_tokens, "Drop special tokens when decoding (default true)");
  add_bool_option(app, "--clean_up_tokenization_spaces", args.clean_up_tokenization_spaces,
                  "HF decode clean-up of spaces before punctuation (default: tokenizer_config.json, else false)");
  app.add_option("--threads", args.threads, "Threads (default: all cores)");
  add_dtype_option(app, args.dtype);
  add_adapter_option(app, args.adapter);
  app.add_flag("--benchmark_mode", args.benchmark_mode,
               "Time generation instead of printing text: --benchmark_seq_length new tokens per run, EOS and "
               "stop strings ignored, greedy unless --do_sample; prints a table of latency, tokens/s and peak memory");
  add_optional(app, "--benchmark_seq_length", args.benchmark_seq_length,
               "Benchmark mode: new tokens generated per run and row (required, >= 1)");
  add_optional(app, "--benchmark_warmup", args.benchmark_warmup,
               "Benchmark mode: untimed warm-up runs before the timed ones (default 1)");
  add_optional(app, "--benchmark_iters", args.benchmark_iters,
               "Benchmark mode: timed runs; the table reports their median (default 3)");
  add_optional(app, "--batch_size", args.batch_size,
               "Prompts per generate() call, in order (default: all in one left-padded batch; see below). "
               "Benchmark mode: rows per run, the prompts repeated in turn to fill them (default: one row per prompt)");
  add_optional(app, "--benchmark_json", args.benchmark_json,
               "Benchmark mode: also write the results as a JSON object to this file");
  add_optional(app, "--json_schema", args.json_schema,
               "Structured output: the text must be JSON valid against the JSON Schema in this file (a subset: "
               "docs/STRUCTURED.md)");
  add_optional(app, "--regex", args.regex, "Structured output: the text must match this regular expression as a whole");
  add_optional(app, "--grammar", args.grammar,
               "Structured output: the text must match the GBNF grammar (llama.cpp's format, rule root) in this file");
  app.add_flag("--json_object", args.json_object, "Structured output: the text must be one JSON object");
  app.footer(
      "Defaults, as HF generate() for every model type, each layer overriding the one before: HF's GenerationConfig "
      "(max_length 20, greedy, temperature 1, top_k 50 when sampling; special token ids from config.json), the "
      "model folder's generation_config.json, the flags. GPT-J's example-script settings are flags: "
      "--do_sample --temperature 0.9 --max_new_tokens 32.\n"
      "Prompts: -p, --prompt_ids and --prompt_file; with none of them, standard input when it is not a terminal "
      "(nothing there: HF's start from bos_token_id). A prompt file (or -) holds one prompt per line, taken as "
      "written (commas and quotes included), unless its first non-blank line is a CSV header naming the "
      "--prompt_column, else a prompt or text column (case-insensitive): then it is read as CSV (quoted fields "
      "may hold commas, \"\" and line breaks). Trailing spaces are dropped, blank lines and empty prompts "
      "skipped, a UTF-8 BOM and CRLF line ends accepted.\n"
      "--json: per prompt {prompt, sentences, ids} (sentences null without a tokenizer) plus, for greedy search "
      "and sampling, token_logprobs: per sequence, the log-probability of each generated token (up to and "
      "including its eos, none for padding) under the scores HF returns with output_scores=True, i.e. after the "
      "logits processors (repetition penalty, no-repeat n-grams, min length) and, when sampling, the warpers "
      "(temperature, top-k, top-p): HF compute_transition_scores(sequences, scores, normalize_logits=True). "
      "Beam search gives sequences_scores (HF's length-normalised beam scores) instead.\n"
      "--fields (the photo-metadata extraction workflow, docs/EXTRACTION.md): one line per generated sequence, "
      "prompt by prompt, {prompt_index, sequence_index, prompt, text, fields}: text is the continuation alone (the "
      "tokens after the prompt, up to and including the first eos, decoded as the sentences are) and fields the "
      "tags of the answer, i.e. of what the prompt has after its last <END> (e.g. a primed <language> en) plus "
      "text, as an object in text order, e.g. {\"language\": \"en\", \"title\": \"...\", \"date\": \"...\"}. "
      "Tags: <language> <rewrite> <title> <agency> <photographer> <date>; a value runs to the next tag and is "
      "trimmed; the first of a repeated tag wins; <END>, <|endoftext|>, <back> or <front> after a field ends the "
      "record; other <...> is text. Score the lines with lmforge eval fields.\n"
      "--batch_size B: the prompts run B at a time, in order, each batch left-padded to its own longest prompt "
      "(HF pipeline's batch_size); with --seed, batch b samples from seed + b x 0x9e3779b97f4a7c15 (batch 0 from "
      "the seed itself). Under mpirun the batches are split across the ranks and rank 0 prints exactly what one "
      "process prints (docs/SCALE_OUT.md).\n"
      "Benchmark mode: lmforge generate --model DIR --benchmark_mode --benchmark_seq_length N [--benchmark_warmup 1] "
      "[--benchmark_iters 3] [--batch_size B] [--benchmark_json FILE]; greedy unless --do_sample; the prompt is "
      "-p/--prompt_file/--prompt_ids, else \"" + std::string(kBenchmarkPrompt) +
      "\" (standard input is not read unless --prompt_file -; a model without a tokenizer starts from bos_token_id).\n"
      "Structured output (--json_schema FILE, --regex PATTERN, --grammar FILE, --json_object; one at a time): every "
      "generated token must keep the text a prefix of what the constraint accepts, and eos may end it only once "
      "it is complete (docs/STRUCTURED.md). Works with greedy search, sampling and beam search; a sequence cut by "
      "max_new_tokens / max_length can be incomplete.\n");
}

GenerationConfig build_config(const Model& model) { return args.gen.build(model.config(), args.model); }

struct Prompt {
  std::string text;  // as given (or decoded from ids)
  std::vector<int32_t> ids;
};

bool prompt_flag_given() { return !args.prompts.empty() || !args.prompt_file.empty() || !args.prompt_ids.empty(); }

// The prompt texts of -p and --prompt_file, or (from_stdin) of standard input: one reader and one
// set of rules for every source (lmforge/io/prompt_file.h).
std::vector<std::string> prompt_texts(bool from_stdin) {
  std::vector<std::string> texts = args.prompts;
  PromptFileOptions o;
  o.column = args.prompt_column.value_or("");
  if (!args.prompt_file.empty()) {
    o.label = "--prompt_file";
    const auto file = read_prompt_file(args.prompt_file, o);
    texts.insert(texts.end(), file.begin(), file.end());
  } else if (from_stdin) {
    // Empty input is no prompt, as if nothing were piped: HF then starts from bos_token_id.
    o.label = "prompts";
    o.allow_empty = true;
    const auto piped = read_prompts(std::cin, "standard input", o);
    texts.insert(texts.end(), piped.begin(), piped.end());
  } else if (args.prompt_column) {
    throw Error("--prompt_column applies to --prompt_file or prompts on standard input, and there are none");
  }
  return texts;
}

// `stdin_prompts`: with no prompt flag, read standard input when it is not a terminal.
std::vector<Prompt> collect_prompts(const std::optional<Tokenizer>& tok, const GenerationConfig& g,
                                    bool stdin_prompts = true) {
  auto need_tokenizer = [&](const std::string& flag) {
    if (!tok)
      throw Error(flag + ": the model folder '" + args.model +
                  "' has no tokenizer (vocab.json + merges.txt or tokenizer.json); use --prompt_ids");
  };
  const bool from_stdin = stdin_prompts && !prompt_flag_given() && !isatty(STDIN_FILENO);
  const std::vector<std::string> texts = prompt_texts(from_stdin);
  std::vector<Prompt> prompts;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string& t = texts[i];
    need_tokenizer(i < args.prompts.size() ? "--prompt" : from_stdin ? "prompts on standard input" : "--prompt_file");
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
    if (!g.bos_token_id) throw Error("no prompt: give --prompt, --prompt_file or --prompt_ids, or pipe prompts to standard input");
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

void print_choices_table(std::ostream& os, const std::optional<Tokenizer>& tok, const Prompt& prompt,
                         const std::vector<StepChoices>& steps, const std::vector<int32_t>& chosen) {
  os << "step\tinput\t";
  for (size_t i = 0; i < (steps.empty() ? 0 : steps[0].ids.size()); ++i) os << "choice " << i << (i + 1 < steps[0].ids.size() ? "\t" : "");
  os << "\n";
  std::vector<int32_t> so_far = prompt.ids;
  for (size_t s = 0; s < steps.size(); ++s) {
    std::string input = tok ? tok->decode(so_far) : std::to_string(so_far.size()) + " tokens";
    for (char& ch : input)
      if (ch == '\n' || ch == '\t') ch = ' ';
    os << s << "\t" << input;
    for (size_t i = 0; i < steps[s].ids.size(); ++i) {
      std::ostringstream pct;
      pct << std::fixed << std::setprecision(2) << 100.0 * steps[s].probs[i];
      os << "\t{" << token_text(tok, steps[s].ids[i]) << " (" << pct.str() << "%)}";
    }
    os << "\n";
    if (s < chosen.size()) so_far.push_back(chosen[s]);
  }
}

// ---- Benchmark mode ----

// Flag checks that need no model: one error naming the flag.
void check_benchmark_flags() {
  if (args.batch_size && *args.batch_size < 1)  // prompts per batch, or rows per benchmark run
    throw Error("--batch_size must be >= 1 (got " + std::to_string(*args.batch_size) + ")");
  if (!args.benchmark_mode) {
    auto only_benchmark = [](bool given, const char* flag) {
      if (given) throw Error(std::string(flag) + " only applies with --benchmark_mode");
    };
    only_benchmark(args.benchmark_seq_length.has_value(), "--benchmark_seq_length");
    only_benchmark(args.benchmark_warmup.has_value(), "--benchmark_warmup");
    only_benchmark(args.benchmark_iters.has_value(), "--benchmark_iters");
    only_benchmark(args.benchmark_json.has_value(), "--benchmark_json");
    return;
  }
  if (!args.benchmark_seq_length)
    throw Error("--benchmark_mode needs --benchmark_seq_length N (the number of tokens to generate per run)");
  if (*args.benchmark_seq_length <= 0)
    throw Error("--benchmark_seq_length must be >= 1 (got " + std::to_string(*args.benchmark_seq_length) + ")");
  if (args.benchmark_warmup && *args.benchmark_warmup < 0)
    throw Error("--benchmark_warmup must be >= 0 (got " + std::to_string(*args.benchmark_warmup) + ")");
  if (args.benchmark_iters && *args.benchmark_iters < 1)
    throw Error("--benchmark_iters must be >= 1 (got " + std::to_string(*args.benchmark_iters) + ")");
  if (args.benchmark_json) {
    // Fail before the runs, not after them.
    if (args.benchmark_json->empty()) throw Error("--benchmark_json: no file name given");
    const auto parent = std::filesystem::path(*args.benchmark_json).parent_path();
    if (!parent.empty() && !std::filesystem::is_directory(parent))
      throw Error("--benchmark_json: cannot write '" + *args.benchmark_json + "': no directory '" + parent.string() + "'");
  }
  auto conflicts = [](bool given, const char* flag, const char* why) {
    if (given) throw Error(std::string(flag) + " cannot be combined with --benchmark_mode (" + why + ")");
  };
  const char* length = "--benchmark_seq_length sets the generated length";
  conflicts(args.gen.max_length.has_value(), "--max_length", length);
  conflicts(args.gen.max_new_tokens.has_value(), "--max_new_tokens", length);
  conflicts(args.gen.min_length.has_value(), "--min_length", length);
  conflicts(args.gen.min_new_tokens.has_value(), "--min_new_tokens", length);
  conflicts(!args.gen.stop_strings.empty(), "--stop_strings", "every run generates --benchmark_seq_length tokens");
  conflicts(args.show_choices != 0, "--show_choices", "it prints no text");
  conflicts(args.json, "--json", "use --benchmark_json FILE for machine-readable results");
  conflicts(args.fields, "--fields", "it prints no text");
}

// --fields is an output format of its own.
void check_fields_flags() {
  if (!args.fields) return;
  if (args.json) throw Error("--fields and --json are two output formats; give one");
  if (args.show_choices != 0) throw Error("--show_choices cannot be combined with --fields (one JSON object per line)");
}

// Generated tokens of a row: those after the prompt up to and including the first eos (the rest is padding).
size_t generated_length(const std::vector<int32_t>& sequence, size_t prompt_length, const std::vector<int32_t>& eos) {
  size_t n = 0;
  for (size_t i = prompt_length; i < sequence.size(); ++i) {
    ++n;
    if (std::find(eos.begin(), eos.end(), sequence[i]) != eos.end()) break;
  }
  return n;
}

// --fields: one JSON object per sequence, its answer (tasks::answer_text) parsed by tasks::parse_fields.
// `first`: the index of prompts[0] among all the prompts.
void print_fields(std::ostream& os, const Tokenizer& tok, const std::vector<Prompt>& prompts, size_t first,
                  const GenerationOutput& out, const GenerationConfig& g, int per_prompt, bool skip_special) {
  for (size_t p = 0; p < prompts.size(); ++p)
    for (int k = 0; k < per_prompt; ++k) {
      const std::vector<int32_t>& s = out.sequences[p * per_prompt + k];
      const auto begin = s.begin() + out.prompt_length;
      const std::vector<int32_t> continuation(begin, begin + generated_length(s, out.prompt_length, g.eos_token_id));
      const std::string text = tok.decode(continuation, skip_special, args.clean_up_tokenization_spaces);
      const tasks::ParsedFields parsed = tasks::parse_fields(tasks::answer_text(prompts[p].text, text));
      const nlohmann::ordered_json line{{"prompt_index", first + p},
                                        {"sequence_index", k},
                                        {"prompt", prompts[p].text},
                                        {"text", text},
                                        {"fields", tasks::fields_json(parsed.fields)}};
      os << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// Peak resident set size of this process so far (Linux ru_maxrss is in KiB), in MB (2^20 bytes).
double peak_memory_mb() {
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

std::string fixed(double v, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << v;
  return os.str();
}

std::string strategy_name(const GenerationConfig& g) {
  if (g.num_beams > 1)
    return (g.do_sample ? "beam sampling, " : "beam search, ") + std::to_string(g.num_beams) + " beams";
  return g.do_sample ? "sampling" : "greedy";
}

int run_benchmark() {
  apply_threads(args.threads);
  const int new_tokens = *args.benchmark_seq_length;
  const int warmup = args.benchmark_warmup.value_or(kBenchmarkWarmup);
  const int iters = args.benchmark_iters.value_or(kBenchmarkIters);

  const auto load0 = std::chrono::steady_clock::now();
  auto model = load_model(args.model, args.dtype, args.adapter);
  const double load_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - load0).count();
  auto tok = load_tokenizer_for_model(args.model, model->vocab_size());

  // HF: generate(min_new_tokens=N, max_new_tokens=N): EOS is masked until N tokens exist, so every row
  // gets exactly N. Greedy unless --do_sample says otherwise (generation_config.json's do_sample does
  // not apply: a benchmark should be reproducible).
  GenerationConfig g = build_config(*model);
  g.max_length.reset();
  g.min_length = 0;
  g.max_new_tokens = new_tokens;
  g.min_new_tokens = new_tokens;
  g.stop_strings.clear();
  g.do_sample = args.gen.do_sample.value_or(false);
  g.validate();

  if (!prompt_flag_given() && tok) args.prompts.push_back(kBenchmarkPrompt);
  const auto prompts = collect_prompts(tok, g, /*stdin_prompts=*/false);
  const size_t rows_wanted = args.batch_size ? static_cast<size_t>(*args.batch_size) : prompts.size();
  std::vector<std::vector<int32_t>> batch;
  for (size_t i = 0; i < rows_wanted; ++i) batch.push_back(prompts[i % prompts.size()].ids);
  size_t prompt_len = 0;
  bool padded = false;
  for (const auto& p : batch) prompt_len = std::max(prompt_len, p.size());
  for (const auto& p : batch) padded = padded || p.size() != prompt_len;
  const int ctx = model->max_positions();
  if (static_cast<int>(prompt_len) + new_tokens > ctx)
    throw Error("--benchmark_seq_length " + std::to_string(new_tokens) + " with a " + std::to_string(prompt_len) +
                "-token prompt needs " + std::to_string(prompt_len + new_tokens) +
                " positions, but the model's context is " + std::to_string(ctx) + " positions");

  const int seqs_per_prompt = g.num_return_sequences;
  const size_t rows = batch.size() * seqs_per_prompt;
  std::vector<double> latencies, first_token;
  size_t generated = 0;
  for (int run = 0; run < warmup + iters; ++run) {
    std::optional<std::chrono::steady_clock::time_point> first;
    GenerationCallbacks cb;
    // The first step's logits exist once the prompt has been through the model (prefill).
    cb.on_step_logits = [&](int, int, const float*, int) {
      if (!first) first = std::chrono::steady_clock::now();
    };
    const auto t0 = std::chrono::steady_clock::now();
    const GenerationOutput out = generate(*model, batch, g, cb);
    const auto t1 = std::chrono::steady_clock::now();
    generated = 0;
    for (const auto& s : out.sequences) {
      const size_t n = s.size() - static_cast<size_t>(out.prompt_length);
      if (n != static_cast<size_t>(new_tokens))
        throw Error("internal: benchmark run generated " + std::to_string(n) + " tokens in a row, not " +
                    std::to_string(new_tokens));
      generated += n;
    }
    if (run < warmup) continue;
    latencies.push_back(std::chrono::duration<double>(t1 - t0).count());
    first_token.push_back(std::chrono::duration<double>((first ? *first : t1) - t0).count());
  }

  const double latency = median(latencies);
  const double ttft = median(first_token);
  const double tps = latency > 0 ? static_cast<double>(generated) / latency : 0.0;
  const double decode_tps =
      new_tokens > 1 && latency > ttft ? static_cast<double>(rows) * (new_tokens - 1) / (latency - ttft) : 0.0;
  const double mem = peak_memory_mb();
  const std::string model_type = model->config().model_type;

  std::vector<std::pair<std::string, std::string>> table{
      {"model", args.model + " (" + model_type + ", " + describe_weights(*model) + ")"},
      {"strategy", strategy_name(g)},
      {"prompt tokens", std::to_string(prompt_len) + (padded ? " per row (left-padded to the longest)" : "")},
      {"new tokens per row", std::to_string(new_tokens)},
      {"batch rows", std::to_string(rows)},
      {"generated tokens per run", std::to_string(generated)},
      {"runs", std::to_string(warmup) + " warm-up + " + std::to_string(iters) + " timed"},
      {"median latency (s)", fixed(latency, 4)},
      {"min / max latency (s)", fixed(*std::min_element(latencies.begin(), latencies.end()), 4) + " / " +
                                    fixed(*std::max_element(latencies.begin(), latencies.end()), 4)},
      {"first-token latency (s)", fixed(ttft, 4)},
      {"tokens/s", fixed(tps, 1)},
      {"decode tokens/s", new_tokens > 1 ? fixed(decode_tps, 1) : std::string("-")},
      {"model load (s)", fixed(load_secs, 3)},
      {"peak memory (MB)", fixed(mem, 1)},
  };
  size_t width = 0;
  for (const auto& [k, v] : table) width = std::max(width, k.size());
  std::cout << "lmforge generate benchmark\n";
  for (const auto& [k, v] : table) std::cout << "  " << std::left << std::setw(static_cast<int>(width)) << k << "  " << v << "\n";
  std::cout << std::flush;

  if (args.benchmark_json) {
    nlohmann::json j{{"model", args.model},
                     {"model_type", model_type},
                     {"dtype", describe_weights(*model)},
                     {"strategy", strategy_name(g)},
                     {"prompt_tokens", prompt_len},
                     {"new_tokens", new_tokens},
                     {"batch_rows", rows},
                     {"generated_tokens", generated},
                     {"warmup", warmup},
                     {"iters", iters},
                     {"latencies_s", latencies},
                     {"median_latency_s", latency},
                     {"first_token_latency_s", ttft},
                     {"tokens_per_s", tps},
                     {"decode_tokens_per_s", decode_tps},
                     {"load_s", load_secs},
                     {"peak_memory_mb", mem}};
    write_file_atomic(*args.benchmark_json, j.dump(2) + "\n");
  }
  return 0;
}

// One batch of prompts as it is printed (text or --fields lines, or --json entries) and its token
// counts: what a rank sends rank 0 under mpirun.
struct BatchOutput {
  std::string text;
  nlohmann::json entries = nlohmann::json::array();
  uint64_t prompt_tokens = 0, new_tokens = 0;
};

void put_batch(dist::ByteWriter& out, const BatchOutput& b) {
  out.put(b.text);
  out.put(b.entries.dump());  // numbers round-trip: nlohmann prints the shortest exact form
  out.put(b.prompt_tokens);
  out.put(b.new_tokens);
}

BatchOutput get_batch(dist::ByteReader& in) {
  BatchOutput b;
  b.text = in.get_string();
  b.entries = nlohmann::json::parse(in.get_string());
  b.prompt_tokens = in.get<uint64_t>();
  b.new_tokens = in.get<uint64_t>();
  return b;
}

// --json entries of one batch, prompt by prompt.
void json_entries(BatchOutput& o, const std::optional<Tokenizer>& tok, const std::vector<Prompt>& prompts,
                  const GenerationOutput& out, int per_prompt, bool skip_special,
                  const std::vector<std::vector<StepChoices>>& choices) {
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
    if (!out.token_logprobs.empty()) {
      nlohmann::json logprobs = nlohmann::json::array();
      for (int k = 0; k < per_prompt; ++k) logprobs.push_back(out.token_logprobs[p * per_prompt + k]);
      entry["token_logprobs"] = logprobs;
    }
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
    o.entries.push_back(entry);
  }
}

// The text output of one batch: every sequence decoded (ids without a tokenizer), headed by
// "=== prompt P, sequence K ===" when the whole run has more than one sequence.
void text_output(std::ostream& os, const std::optional<Tokenizer>& tok, const std::vector<Prompt>& prompts, size_t first,
                 const GenerationOutput& out, int per_prompt, bool skip_special, bool headers,
                 const std::vector<std::vector<StepChoices>>& choices) {
  for (size_t p = 0; p < prompts.size(); ++p)
    for (int k = 0; k < per_prompt; ++k) {
      const size_t r = p * per_prompt + k;
      if (headers) {
        os << "=== prompt " << first + p << ", sequence " << k;
        if (!out.sequences_scores.empty()) os << " (score " << out.sequences_scores[r] << ")";
        os << " ===\n";
      }
      if (tok) {
        os << tok->decode(out.sequences[r], skip_special, args.clean_up_tokenization_spaces) << "\n";
      } else {
        for (size_t i = 0; i < out.sequences[r].size(); ++i) os << (i ? " " : "") << out.sequences[r][i];
        os << "\n";
      }
      if (args.show_choices > 0) {
        std::vector<int32_t> chosen(out.sequences[r].begin() + out.prompt_length, out.sequences[r].end());
        Prompt padded{prompts[p].text, std::vector<int32_t>(out.sequences[r].begin(), out.sequences[r].begin() + out.prompt_length)};
        print_choices_table(os, tok, padded, choices[r], chosen);
      }
    }
}

// ---- Structured output ----

struct StructuredFlag {
  std::string label;  // "--json_schema FILE", "--regex", ...: starts every error
  structured::ConstraintSpec spec;
};

std::string read_file_for(const std::string& flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(flag + ": cannot read '" + path + "'");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The one structured-output flag given, if any (an error names both when two are).
std::optional<StructuredFlag> structured_flag() {
  std::vector<StructuredFlag> given;
  if (args.json_schema)
    given.push_back({"--json_schema " + *args.json_schema,
                     {structured::ConstraintKind::JsonSchema, read_file_for("--json_schema", *args.json_schema)}});
  if (args.regex) given.push_back({"--regex", {structured::ConstraintKind::Regex, *args.regex}});
  if (args.grammar)
    given.push_back({"--grammar " + *args.grammar,
                     {structured::ConstraintKind::Grammar, read_file_for("--grammar", *args.grammar)}});
  if (args.json_object) given.push_back({"--json_object", {structured::ConstraintKind::JsonObject, ""}});
  if (given.empty()) return std::nullopt;
  if (given.size() > 1)
    throw Error(given[0].label.substr(0, given[0].label.find(' ')) + " and " +
                given[1].label.substr(0, given[1].label.find(' ')) + " cannot be combined: give one structured-output flag");
  return given[0];
}

// The flag's grammar, compiled before the model loads so a bad pattern fails at once; the message
// names the flag (and file) instead of the parser ("grammar: ...").
structured::Grammar structured_grammar(const StructuredFlag& f) {
  try {
    return structured::grammar_of(f.spec);
  } catch (const Error& e) {
    std::string msg = e.what();
    for (const char* own : {"regex: ", "grammar: ", "json_schema: "})
      if (msg.rfind(own, 0) == 0) msg = msg.substr(std::string(own).size());
    throw Error(f.label + ": " + msg);
  }
}

int run() {
  check_benchmark_flags();
  const auto constraint_flag = structured_flag();
  std::optional<structured::Grammar> grammar;
  if (constraint_flag) {
    if (args.benchmark_mode)
      throw Error(constraint_flag->label.substr(0, constraint_flag->label.find(' ')) +
                  " cannot be combined with --benchmark_mode (it times a fixed number of tokens)");
    grammar = structured_grammar(*constraint_flag);
  }
  if (args.benchmark_mode) return run_benchmark();
  check_fields_flags();
  if (args.show_choices < 0) throw Error("--show_choices must be >= 0");
  // Under mpirun the batches are split across ranks (docs/SCALE_OUT.md); rank 0 prints them all.
  const dist::World& w = sharded_world(args.model, args.adapter);
  if (w.distributed() && !prompt_flag_given())
    throw Error("prompts: standard input reaches rank 0 alone under mpirun; give --prompt_file (or -p) so every rank "
                "reads them");
  apply_threads(args.threads);
  auto model = load_model(args.model, args.dtype, args.adapter);
  auto tok = load_tokenizer_for_model(args.model, model->vocab_size());
  if (args.fields && !tok)
    throw Error("--fields: the model folder '" + args.model + "' has no tokenizer (vocab.json + merges.txt or "
                "tokenizer.json) to decode the generated text with");
  GenerationConfig g = build_config(*model);
  g.output_scores = args.json;  // token_logprobs
  if (grammar) {
    if (!tok)
      throw Error(constraint_flag->label + ": the model folder '" + args.model +
                  "' has no tokenizer (vocab.json + merges.txt or tokenizer.json) to map tokens to text");
    g.constraint = std::make_shared<const structured::TokenConstraint>(std::move(*grammar), structured::vocabulary_of(*tok));
    g.validate();
  }
  if (args.show_choices > 0 && g.num_beams > 1) throw Error("--show_choices works with greedy search or sampling, not --num_beams > 1");
  const auto prompts = collect_prompts(tok, g);

  const bool skip_special = args.skip_special_tokens.value_or(true);
  const int per_prompt = g.num_return_sequences;  // sequences per prompt, beam search included
  const size_t total_rows = prompts.size() * per_prompt;
  const bool stream = !args.json && !args.fields && tok && total_rows == 1 && g.num_beams == 1 && args.show_choices == 0;
  // --batch_size B: B prompts per generate() call, in order (default: all of them in one batch).
  const size_t per_batch = args.batch_size ? static_cast<size_t>(*args.batch_size) : prompts.size();
  const size_t n_batches = (prompts.size() + per_batch - 1) / per_batch;
  const dist::Range mine = dist::shard_range(n_batches, w);
  announce_shard(w, "generate", "batches", mine, n_batches);

  const auto t0 = std::chrono::steady_clock::now();
  std::vector<BatchOutput> outputs;
  for (size_t b = mine.begin; b < mine.end; ++b) {
    const size_t first = b * per_batch;
    const std::vector<Prompt> part(prompts.begin() + first, prompts.begin() + std::min(prompts.size(), first + per_batch));
    std::vector<std::vector<int32_t>> batch;
    for (const auto& p : part) batch.push_back(p.ids);
    GenerationConfig gb = g;
    if (gb.seed) gb.seed = *g.seed + b * 0x9e3779b97f4a7c15ull;  // synth's rule: batch 0 keeps the seed itself

    GenerationCallbacks cb;
    std::unique_ptr<Streamer> streamer;
    if (tok) cb.decode = [&](const std::vector<int32_t>& ids) { return tok->decode(ids, false, false); };  // HF matches stop strings on raw token text
    if (stream) {
      streamer = std::make_unique<Streamer>(*tok, skip_special, args.clean_up_tokenization_spaces);
      std::cout << tok->decode(batch[0], skip_special, args.clean_up_tokenization_spaces) << std::flush;
      cb.on_tokens = [&](const std::vector<int32_t>& t) { streamer->push(t[0]); };
    }
    std::vector<std::vector<StepChoices>> choices(part.size() * per_prompt);
    if (args.show_choices > 0)
      cb.on_step_logits = [&](int, int row, const float* logits, int vocab) {
        choices[row].push_back(top_choices(logits, vocab, args.show_choices));
      };
    const GenerationOutput out = generate(*model, batch, gb, cb);
    if (streamer) streamer->finish();

    BatchOutput o;
    for (const auto& p : part) o.prompt_tokens += p.ids.size();
    for (const auto& s : out.sequences) o.new_tokens += generated_length(s, out.prompt_length, g.eos_token_id);
    std::ostringstream os;
    if (args.fields)
      print_fields(os, *tok, part, first, out, g, per_prompt, skip_special);
    else if (args.json)
      json_entries(o, tok, part, out, per_prompt, skip_special, choices);
    else if (!stream)
      text_output(os, tok, part, first, out, per_prompt, skip_special, total_rows > 1, choices);
    o.text = os.str();
    outputs.push_back(std::move(o));
  }
  if (w.distributed()) outputs = dist::gather_items(w, outputs, "generated batches", put_batch, get_batch);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!w.is_root()) return 0;

  uint64_t prompt_tokens = 0, new_tokens = 0;
  nlohmann::json all = nlohmann::json::array();
  for (const BatchOutput& o : outputs) {
    prompt_tokens += o.prompt_tokens;
    new_tokens += o.new_tokens;
    std::cout << o.text;
    for (const auto& e : o.entries) all.push_back(e);
  }
  if (args.json) std::cout << all.dump(2) << "\n";
  std::cerr << "lmforge: " << prompt_tokens << " prompt tokens, " << new_tokens << " generated tokens in "
            << std::fixed << std::setprecision(2) << secs << " s (" << std::setprecision(1)
            << (secs > 0 ? new_tokens / secs : 0.0) << " tokens/s)\n";
  return 0;
}

Command command{"generate", "Generate text with HF generate() semantics (greedy, beam search, sampling)", setup, run};

}  // namespace
}  // namespace lmforge::cli
