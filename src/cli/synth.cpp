// lmforge synth: seed 000's synthetic headline generation (generate_text.py --model_config),
// batched, with a privacy guard against the training rows and a synthetic-set report.
// Every key of the YAML is also a flag of the same name; flags are applied after the YAML and win.
#include <unistd.h>

#include <chrono>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

#include "cli/command.h"
#include "cli/common.h"
#include "cli/distributed.h"
#include "lmforge/error.h"
#include "lmforge/eval/training_record.h"
#include "lmforge/model/model.h"
#include "lmforge/synth/synth_report.h"
#include "lmforge/synth/synthesize.h"
#include "lmforge/train/data.h"

namespace lmforge::cli {
namespace {

using namespace lmforge::synth;

struct Args {
  std::string model_config, dtype = "auto";
  std::string adapter;  // --adapter: PEFT LoRA folder applied unmerged
  std::vector<std::pair<std::string, std::string>> overrides;  // in command-line order
} args;

std::string help_for(const std::string& key) {
  static const std::map<std::string, std::string> help = {
      {"model", "HF model folder (YAML: model.path)"},
      {"pretrained_model", "Folder with the tokenizer when the model folder has none (YAML: model.pretrained_model)"},
      {"tokenizer", "Tokenizer folder (default: the model folder, else pretrained_model)"},
      {"prompt_file", "Prompts: one per line, or a CSV whose first line names the column (prompt, text or "
                      "--prompt_column); '-' = standard input; none = generate from the prefix alone"},
      {"prompt_column", "The prompt column of a CSV --prompt_file (default: prompt, else text)"},
      {"min_length", "Generated tokens before the suffix may end a row (default 0)"},
      {"max_length_buffer", "Max generated tokens = min_length + max_length_buffer (default 20)"},
      {"num_samples", "Rows per prompt (default 1)"},
      {"batch_size", "Sequences per generate() call (default 16)"},
      {"seed", "Sampling seed (default 42)"},
      {"prefix", "Text before every prompt, as in training (default: the prefix finetune recorded in the model "
                 "folder's lmforge_output.json, else '|HEADLINE| ')"},
      {"suffix", "End of a row, as in training (default: finetune's recorded suffix, else '.')"},
      {"keep_suffix", "Keep the suffix at the end of a row, as the reference workflow prints it (default true)"},
      {"output", "Output file, written atomically (default: stdout); an existing file that is not synth's own "
                 "earlier output is refused unless --overwrite_output_dir"},
      {"overwrite_output_dir", "Replace an existing --output/--report file even when it is not synth's own output"},
      {"format", "json (the reference workflow's [{\"sentences\": [...]}]) | jsonl | csv"},
      {"reference_data", "Training CSV: rows copying it are dropped (privacy guard)"},
      {"column", "Text column of --reference_data (default headline_text)"},
      {"max_copy_ngram", "A row sharing this many consecutive words with a training row is a copy (default 8)"},
      {"privacy", "drop (default) | flag: keep copies and mark them"},
      {"report", "Write the synthetic-set report as JSON here and print it as a table (an existing file must be "
                 "an earlier synth report, unless --overwrite_output_dir)"},
      {"self_bleu_samples", "Rows scored for self-BLEU at most (default 500)"},
      {"threads", "Threads (default: all cores)"},
  };
  auto it = help.find(key);
  return it == help.end() ? "HF generation parameter '" + key + "'" : it->second;
}

void setup(CLI::App& app) {
  app.add_option("--model_config", args.model_config, "YAML file in the reference workflow's config_finetuned.yml format (see examples/synth_headlines.yml; flags win)");
  add_key_flags(app, synth_config_keys(), is_bool_key, help_for, args.overrides);
  add_dtype_option(app, args.dtype);
  add_adapter_option(app, args.adapter);
}

// The prefix/suffix finetune recorded in the model folder, unless the YAML or a flag gave them.
// Returns the "lmforge: using finetune's ..." line ("" when nothing was taken), printed once the
// model has loaded, so a bad input still gets exactly one line on stderr.
std::string apply_record(SynthConfig& cfg) {
  const auto record = eval::load_training_record(cfg.model);
  if (!record) return "";
  return eval::record_used_line(*record, apply_training_record(cfg, *record));
}

void write_result(const std::string& path, const std::string& key, const std::string& bytes) {
  try {
    write_file_atomic(path, bytes);
  } catch (const Error& e) {
    throw Error(key + ": " + e.what());
  }
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

std::string fixed(double v, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << v;
  return os.str();
}

struct Reference {
  std::vector<std::string> rows;
  std::unique_ptr<PrivacyGuard> guard;
};

Reference load_reference(const SynthConfig& cfg) {
  Reference ref;
  if (cfg.reference_data.empty()) return ref;
  const auto t0 = std::chrono::steady_clock::now();
  DataOptions opt;
  opt.data_path = cfg.reference_data;
  opt.text_column = cfg.column;
  opt.max_rows = 0;  // every row
  try {
    ref.rows = read_text_rows(opt).texts;
  } catch (const Error& e) {
    throw Error(std::string("reference_data: ") + e.what());
  }
  ref.guard = std::make_unique<PrivacyGuard>(cfg.max_copy_ngram);
  ref.guard->add_references(ref.rows);
  std::cerr << "lmforge synth: privacy index of " << ref.rows.size() << " rows of '" << cfg.column << "' in "
            << cfg.reference_data << " (" << ref.guard->distinct_ngrams() << " distinct " << cfg.max_copy_ngram
            << "-grams) built in " << fixed(seconds_since(t0), 2) << " s\n";
  return ref;
}

Tokenizer load_synth_tokenizer(const SynthConfig& cfg, int vocab_size) {
  for (const std::string& dir : {cfg.tokenizer, cfg.model, cfg.pretrained_model}) {
    if (dir.empty()) continue;
    if (auto tok = load_tokenizer_for_model(dir, vocab_size)) return std::move(*tok);
    if (dir == cfg.tokenizer) throw Error("tokenizer: no vocab.json + merges.txt or tokenizer.json in '" + dir + "'");
  }
  throw Error("model: '" + cfg.model + "' has no tokenizer (vocab.json + merges.txt or tokenizer.json); set tokenizer");
}

std::optional<int32_t> single_token(const Tokenizer& tok, const std::string& text) {
  if (text.empty()) return std::nullopt;
  const auto ids = tok.encode(text);
  return ids.size() == 1 ? std::optional<int32_t>(ids[0]) : std::nullopt;
}

// A bar that redraws itself on a terminal; nothing when stderr is a file or pipe.
void show_progress(const Progress& p, double secs) {
  if (!isatty(STDERR_FILENO) || p.total == 0) return;
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(kWidth * p.done / p.total);
  std::cerr << "\r[" << std::string(static_cast<size_t>(filled), '#') << std::string(static_cast<size_t>(kWidth - filled), ' ')
            << "] " << p.done << "/" << p.total << " rows  " << fixed(secs > 0 ? p.done / secs : 0.0, 1) << " rows/s"
            << (p.done == p.total ? "\n" : "") << std::flush;
}

void print_privacy_summary(const std::vector<SynthRow>& rows, const SynthConfig& cfg) {
  int64_t exact = 0, ngram = 0;
  for (const auto& r : rows) {
    exact += r.privacy.reason == CopyReason::ExactCopy;
    ngram += r.privacy.reason == CopyReason::NgramCopy;
  }
  const bool drop = cfg.privacy == PrivacyMode::Drop;
  std::cerr << "lmforge synth: privacy guard " << (drop ? "dropped " : "flagged ") << exact + ngram << " of " << rows.size()
            << " rows (" << exact << " exact copies of a training row, " << ngram << " sharing a run of "
            << cfg.max_copy_ngram << "+ words with one)\n";
}

void put_row(dist::ByteWriter& out, const SynthRow& r) {
  out.put<uint64_t>(r.prompt_index);
  out.put(r.prompt);
  out.put(r.text);
  out.put<int32_t>(r.tokens);
  out.put<int32_t>(static_cast<int32_t>(r.stop));
}

SynthRow get_row(dist::ByteReader& in) {
  SynthRow r;
  r.prompt_index = in.get<uint64_t>();
  r.prompt = in.get_string();
  r.text = in.get_string();
  r.tokens = in.get<int32_t>();
  r.stop = static_cast<StopReason>(in.get<int32_t>());
  return r;
}

// This rank's share of the batches, gathered on rank 0 in batch order; other ranks get nothing.
std::vector<SynthRow> sharded_rows(const dist::World& w, const LanguageModel& model, const Tokenizer& tok,
                                   const SynthConfig& cfg, const GenerationConfig& gen,
                                   const std::vector<std::string>& prompts) {
  const size_t batches = batch_count(cfg, gen, prompts.size());
  const dist::Range mine = dist::shard_range(batches, w);
  announce_shard(w, "synth", "batches", mine, batches);
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<SynthRow> rows = generate_rows(
      model, tok, cfg, gen, prompts, [&](const Progress& p) { show_progress(p, seconds_since(t0)); }, {mine.begin, mine.end});
  if (!w.distributed()) return rows;
  return dist::gather_items(w, rows, "synth rows", put_row, get_row);
}

int run() {
  SynthConfig cfg;
  if (!args.model_config.empty()) load_synth_config(args.model_config, cfg);
  for (const auto& [key, value] : args.overrides) set_synth_value(cfg, key, value, "--" + key);
  validate(cfg);
  const dist::World& w = sharded_world(cfg.model, args.adapter);
  if (w.distributed() && cfg.prompt_file == "-")
    throw Error("prompt_file: standard input reaches rank 0 alone under mpirun; give the prompts as a file every rank reads");
  // Before the (long) generation: a result that could not be written is refused now. Rank 0 alone writes.
  if (w.is_root()) check_output_files(cfg);
  const std::string record_line = apply_record(cfg);
  apply_threads(cfg.threads);

  const std::vector<std::string> prompts = cfg.prompt_file.empty() ? std::vector<std::string>{} : read_prompt_file(cfg.prompt_file, PromptFileOptions{cfg.prompt_column, "prompt_file", false});
  // The guard runs on rank 0 over the gathered rows: its index is built once, there, and only
  // rank 0 needs the reference data.
  const Reference reference = w.is_root() ? load_reference(cfg) : Reference{};
  const auto model = load_model(cfg.model, args.dtype, args.adapter);
  const Tokenizer tok = load_synth_tokenizer(cfg, model->vocab_size());
  const GenerationConfig gen = generation_config(cfg, model->config(), single_token(tok, cfg.suffix));
  if (!record_line.empty() && w.is_root()) std::cerr << record_line << std::endl;

  const auto t0 = std::chrono::steady_clock::now();
  std::vector<SynthRow> rows = sharded_rows(w, *model, tok, cfg, gen, prompts);
  if (!w.is_root()) return 0;
  const double secs = seconds_since(t0);
  const size_t entries = std::max<size_t>(1, prompts.size());
  std::cerr << "lmforge synth: " << rows.size() << " rows (" << entries << " prompts x " << cfg.num_samples
            << " samples) in " << fixed(secs, 2) << " s (" << fixed(secs > 0 ? rows.size() / secs : 0.0, 1)
            << " rows/s, batch " << cfg.batch_size << ")\n";

  if (reference.guard) {
    apply_privacy_guard(*reference.guard, cfg.privacy, rows);
    print_privacy_summary(rows, cfg);
  }
  // Privacy columns only say something when a guard ran.
  const PrivacyMode shown = reference.guard ? cfg.privacy : PrivacyMode::Drop;
  const std::string out = render_rows(rows, entries, cfg.format, shown);
  if (cfg.output.empty()) std::cout << out << std::flush;
  else write_result(cfg.output, "output", out);

  if (!cfg.report.empty()) {
    const SynthReport report = build_report(rows, reference.rows, cfg);
    write_result(cfg.report, "report", report.to_json().dump(2) + "\n");
    // The table goes to stdout unless the rows themselves are being printed there.
    (cfg.output.empty() ? std::cerr : std::cout) << report.to_table() << std::flush;
  }
  return 0;
}

Command command{"synth", "Synthetic rows from a fine-tuned model, with a privacy guard against copying training rows and a report", setup, run};

}  // namespace
}  // namespace lmforge::cli
