// lmforge task: a labelled dataset through a prompt template (with few-shot examples) into a model,
// scored in generate mode (the reference GPT-J notebook's pipeline) or loglikelihood mode (lm-evaluation-
// harness multiple choice), with accuracy, per-class precision / recall and the confusion matrix.
// The library does the work (lmforge/tasks/*); this file reads flags and prints. See docs/TASKS.md.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "cli/distributed.h"
#include "cli/generation_flags.h"
#include "cli/options.h"
#include "lmforge/error.h"
#include "lmforge/model/model.h"
#include "lmforge/tasks/report.h"
#include "lmforge/tasks/task_runner.h"

namespace lmforge::cli {
namespace {

using nlohmann::ordered_json;
using namespace lmforge::tasks;

constexpr int kDefaultOutputLength = 10;     // the reference notebook's inference.output_length
constexpr int kDefaultMicroBatchSize = 12;   // the reference notebook's execution.micro_batch_size

struct Args {
  std::string model, data, template_file, prompt_template, mode = "generate", dtype = "auto";
  std::string adapter;  // --adapter: PEFT LoRA folder applied unmerged
  std::string data_format = "auto", field_map, label_field = "label", label_names;
  std::optional<std::string> instruction, target_delimiter, fewshot_delimiter, choices;
  std::optional<int> num_fewshot;
  std::string fewshot_file, fewshot_ids;
  uint64_t fewshot_seed = 1234;
  std::optional<int64_t> limit;
  std::string rows;
  int micro_batch_size = kDefaultMicroBatchSize, sequence_length = 0, threads = 0;
  bool print_live = false, json = false, ignore_case = false;
  std::string match = "exact", answer_regex, output, write_training_csv;
  GenerationFlags gen;
} args;

void setup(CLI::App& app) {
  app.add_option("--model,-m", args.model, "HF checkpoint folder (or a model name in the local HF cache)");
  app.add_option("--data", args.data,
                 "Dataset: .csv, .tsv (GLUE, e.g. MNLI dev_mismatched.tsv) or .jsonl (HF datasets export)")
      ->required();
  app.add_option("--template", args.template_file,
                 "Prompt template (YAML: text, choices, target_delimiter, examples, ...; built-ins in examples/tasks/)");
  app.add_option("--prompt_template", args.prompt_template,
                 "An inline template: the row's prompt with {field} placeholders (\\n = line break)");
  add_optional(app, "--instruction", args.instruction,
               "Text once before the prompt (overrides the template's; \\n = line break)");
  add_optional(app, "--choices", args.choices,
               "Answers for the labels in order, comma-separated (overrides the template's), e.g. True,Neither,False");
  add_optional(app, "--target_delimiter", args.target_delimiter,
               "Between a prompt and its answer (template default \" \"; \\n = line break)");
  add_optional(app, "--fewshot_delimiter", args.fewshot_delimiter,
               "After each few-shot example (template default \"\\n\\n\")");
  app.add_option("--mode", args.mode,
                 "generate (generate --output_length tokens, parse the answer) | loglikelihood (lm-eval multiple "
                 "choice: acc, acc_norm)");
  app.add_option("--data_format", args.data_format, "auto (from the extension) | csv | tsv | jsonl");
  app.add_option("--field_map", args.field_map, "FIELD=COLUMN,... e.g. premise=sentence1,hypothesis=sentence2");
  app.add_option("--label_field", args.label_field, "The dataset field with the gold label (default label)");
  app.add_option("--label_names", args.label_names,
                 "Label names in index order, e.g. entailment,neutral,contradiction (GLUE MNLI's, the default for "
                 "premise/hypothesis rows)");
  add_optional(app, "--num_fewshot", args.num_fewshot,
               "Few-shot examples per prompt, drawn with --fewshot_seed from the few-shot pool (lm-eval's rule)");
  app.add_option("--fewshot_file", args.fewshot_file,
                 "Few-shot pool (e.g. the train split; default: the template's examples, else the dataset itself)");
  app.add_option("--fewshot_ids", args.fewshot_ids, "Fixed few-shot examples: row ids in the pool, e.g. 0,2,8");
  app.add_option("--fewshot_seed", args.fewshot_seed, "Seed of the few-shot draw (default 1234, lm-eval's)");
  add_optional(app, "--limit", args.limit, "Evaluate only the first N rows (lm-eval's --limit)");
  app.add_option("--rows", args.rows, "Evaluate rows START:END (Python slice of row ids, e.g. 12:48)");
  app.add_option("--micro_batch_size", args.micro_batch_size, "Prompts per batch (default 12, the reference notebook's)");
  app.add_option("--sequence_length", args.sequence_length,
                 "Refuse rows needing more tokens (prompt + output_length, or prompt + choice) than this");
  app.add_flag("--print_live", args.print_live,
               "Print each row's output, parsed label and gold label as its micro-batch finishes (at "
               "--micro_batch_size 1 the text streams token by token)");
  app.add_option("--match", args.match,
                 "Generate mode: exact (answer == label text) | contains (the label text occurs in the answer)");
  app.add_flag("--ignore_case", args.ignore_case, "Generate mode: match labels case-insensitively (ASCII)");
  app.add_option("--answer_regex", args.answer_regex,
                 "Generate mode: PCRE2 regex searched in the output; group 1 (or the match) is the answer");
  app.add_option("--output,-o", args.output,
                 "Write predictions.jsonl: every row's prompt, raw output, parsed answer, prediction and label");
  app.add_flag("--json", args.json, "Print the summary (accuracy, per-class metrics, confusion matrix, speed) as JSON");
  app.add_option("--write_training_csv", args.write_training_csv,
                 "Write each labelled row as text + target_delimiter + target to this CSV (column text), for "
                 "lmforge finetune --text_column text --prefix '' --suffix ''; no model is run");
  app.add_option("--threads", args.threads, "Threads (default: all cores)");
  add_dtype_option(app, args.dtype);
  add_adapter_option(app, args.adapter);
  args.gen.add(app, "--max_new_tokens,--output_length");
  app.footer(
      "Generate mode: each prompt gets --output_length (= --max_new_tokens, default 10, the reference notebook's) new tokens, "
      "greedy unless HF decoding flags say otherwise (generation_config.json applies, except its length); the "
      "answer is the first line of the output without special tokens, stripped (or --answer_regex's group 1), "
      "matched against each label's text (the template's choices, else the label names).\n"
      "Loglikelihood mode: each choice is scored as lm-evaluation-harness does, target_delimiter + choice after "
      "the prompt; accuracy is acc (argmax of the log-likelihoods), acc_norm divides by the choice's length in "
      "characters.\n"
      "Report: accuracy, per-class precision/recall/f1, the confusion matrix, answers that matched no label, "
      "examples/s and tokens/s. See docs/TASKS.md.");
}

// ---- data --------------------------------------------------------------------------------------

Template load_task_template() {
  if (!args.template_file.empty() && !args.prompt_template.empty())
    throw Error("give --template or --prompt_template, not both");
  Template t;
  if (!args.template_file.empty()) t = load_template(args.template_file);
  else if (!args.prompt_template.empty()) t = inline_template(args.prompt_template);
  else throw Error("no prompt template: give --template FILE (e.g. examples/tasks/mnli_lm_eval.yaml) or --prompt_template TEXT");
  if (args.instruction) t.instruction = unescape_flag_text(*args.instruction);
  if (args.target_delimiter) t.target_delimiter = unescape_flag_text(*args.target_delimiter);
  if (args.fewshot_delimiter) t.fewshot_delimiter = unescape_flag_text(*args.fewshot_delimiter);
  if (args.choices) {
    t.choices = parse_label_names(*args.choices, "--choices");
    for (const auto& c : t.choices) pattern_fields(c, "--choices");
  }
  return t;
}

DatasetOptions dataset_options(const Template& t) {
  DatasetOptions o;
  o.format = parse_data_format(args.data_format, "--data_format");
  if (!args.field_map.empty()) o.field_map = parse_field_map(args.field_map, "--field_map");
  o.label_field = args.label_field;
  o.label_names = args.label_names.empty() ? t.label_names : parse_label_names(args.label_names, "--label_names");
  o.keep_fields = template_fields(t);
  return o;
}

// "12:48", ":200", "12:" -> [start, end) over `n` rows (Python slice, no negatives or step).
std::pair<size_t, size_t> parse_rows(const std::string& spec, size_t n) {
  const size_t colon = spec.find(':');
  auto number = [&](const std::string& s, size_t dflt) -> size_t {
    if (s.empty()) return dflt;
    if (s.find_first_not_of("0123456789") != std::string::npos)
      throw Error("--rows: expected START:END with non-negative row ids, e.g. 12:48, got '" + spec + "'");
    return std::min(static_cast<size_t>(std::stoull(s)), n);
  };
  if (colon == std::string::npos) throw Error("--rows: expected START:END, e.g. 12:48, got '" + spec + "'");
  const size_t a = number(spec.substr(0, colon), 0), b = number(spec.substr(colon + 1), n);
  return {a, std::max(a, b)};
}

std::vector<const Row*> selected_rows(const Dataset& d) {
  size_t begin = 0, end = d.rows.size();
  if (!args.rows.empty()) std::tie(begin, end) = parse_rows(args.rows, d.rows.size());
  if (args.limit) {
    if (*args.limit < 1) throw Error("--limit must be at least 1, got " + std::to_string(*args.limit));
    end = std::min(end, begin + static_cast<size_t>(*args.limit));
  }
  std::vector<const Row*> out;
  for (size_t i = begin; i < end; ++i) out.push_back(&d.rows[i]);
  if (out.empty()) throw Error("--rows " + args.rows + " selects no rows of " + args.data + " (" + std::to_string(d.rows.size()) + " rows)");
  return out;
}

std::string csv_field(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

int write_training_csv(const Template& t, const Dataset& d) {
  std::string csv = "text\n";
  int64_t n = 0;
  for (const Row* row : selected_rows(d)) {
    if (row->label == kNoLabel) continue;
    csv += csv_field(render_text(t, *row) + t.target_delimiter + render_target(t, *row, d.label_names)) + "\n";
    ++n;
  }
  if (n == 0) throw Error(args.data + ": no row has a gold label, so there is no training text to write");
  write_file_atomic(args.write_training_csv, csv);
  std::cerr << "lmforge: wrote " << n << " training rows to " << args.write_training_csv << "\n";
  return 0;
}

// ---- progress and live output --------------------------------------------------------------------

class Progress {
 public:
  explicit Progress(size_t total) : total_(total), enabled_(isatty(STDERR_FILENO) != 0) {}
  void update(size_t done, double seconds) {
    if (!enabled_) return;
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(kWidth * done / std::max<size_t>(total_, 1));
    const double rate = seconds > 0 ? done / seconds : 0;
    const double eta = rate > 0 ? (total_ - done) / rate : 0;
    char buf[160];
    std::snprintf(buf, sizeof buf, "\r[%s%s] %zu/%zu rows, %.1f rows/s, ETA %.0f s ", std::string(filled, '#').c_str(),
                  std::string(kWidth - filled, '.').c_str(), done, total_, rate, eta);
    std::cerr << buf << std::flush;
  }
  void finish() {
    if (enabled_) std::cerr << "\r" << std::string(90, ' ') << "\r" << std::flush;
  }

 private:
  size_t total_;
  bool enabled_;
};

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  return s;
}

// --print_live at micro-batch 1: the row's text as its tokens arrive (decoded as `output` is, a
// partial UTF-8 character held back); print_live_rows then ends the line.
class LiveText {
 public:
  LiveText(std::ostream& out, const Tokenizer& tok, const std::vector<TaskExample>& ex) : out_(out), tok_(tok), ex_(ex) {}
  void push(size_t example, int32_t token) {
    if (example != example_) {
      example_ = example;
      ids_.clear();
      printed_ = 0;
      out_ << "[row " << ex_[example].row->id << "] ";
    }
    ids_.push_back(token);
    const std::string text = one_line(tok_.decode(ids_));  // as `output`: special tokens kept
    if (text.size() >= 3 && text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0) return;  // wait for more bytes
    if (text.size() > printed_) {
      out_ << text.substr(printed_) << std::flush;
      printed_ = text.size();
    }
  }
  bool streamed(size_t example) const { return example == example_; }

 private:
  std::ostream& out_;
  const Tokenizer& tok_;
  const std::vector<TaskExample>& ex_;
  size_t example_ = static_cast<size_t>(-1), printed_ = 0;
  std::vector<int32_t> ids_;
};

void print_live_rows(std::ostream& out, const std::vector<TaskExample>& ex, const std::vector<ExampleResult>& res,
                     const std::vector<std::string>& names, size_t first, size_t count, TaskMode mode,
                     const LiveText* live) {
  for (size_t i = first; i < first + count; ++i) {
    if (mode == TaskMode::Generate && live && live->streamed(i)) out << " -> " << (res[i].prediction < 0 ? "(no label)" : names[res[i].prediction]);
    else if (mode == TaskMode::Generate) out << "[row " << ex[i].row->id << "] " << one_line(res[i].output) << " -> " << (res[i].prediction < 0 ? "(no label)" : names[res[i].prediction]);
    else out << "[row " << ex[i].row->id << "] " << names[res[i].prediction];
    if (ex[i].row->label != kNoLabel) out << " (gold " << names[ex[i].row->label] << ")";
    out << "\n";
  }
  out << std::flush;
}

// ---- reports -------------------------------------------------------------------------------------

std::string predictions_jsonl(const std::vector<TaskExample>& ex, const std::vector<ExampleResult>& res,
                              const std::vector<std::string>& names, TaskMode mode) {
  std::ostringstream o;
  for (size_t i = 0; i < ex.size(); ++i) {
    const Row& row = *ex[i].row;
    const ExampleResult& r = res[i];
    ordered_json j{{"id", row.id}, {"prompt", ex[i].prompt}};
    if (mode == TaskMode::Generate) {
      j["output"] = r.output;
      j["output_ids"] = r.output_ids;
      j["answer"] = r.answer;
    } else {
      j["choices"] = ex[i].choices;
      j["ll"] = r.ll;
      j["is_greedy"] = r.is_greedy;
    }
    j["prediction"] = r.prediction < 0 ? ordered_json(nullptr) : ordered_json(names[r.prediction]);
    if (mode == TaskMode::Loglikelihood) j["prediction_norm"] = names[r.pred_acc_norm];
    j["label"] = row.label == kNoLabel ? ordered_json(nullptr) : ordered_json(names[row.label]);
    if (row.label != kNoLabel) {
      j["correct"] = r.prediction == row.label;
      if (mode == TaskMode::Loglikelihood) j["correct_norm"] = r.pred_acc_norm == row.label;
    }
    o << j.dump() << "\n";
  }
  return o.str();
}

void add_report_json(ordered_json& j, const ClassificationReport& rep) {
  ordered_json per_class = ordered_json::object();
  for (size_t i = 0; i < rep.labels.size(); ++i) {
    const ClassMetrics& c = rep.classes[i];
    per_class[rep.labels[i]] = {{"precision", c.precision}, {"recall", c.recall}, {"f1", c.f1}, {"support", c.support},
                                {"predicted", c.predicted}};
  }
  std::vector<std::string> cols = rep.labels;
  cols.push_back("unmatched");
  j["per_class"] = std::move(per_class);
  ordered_json confusion = ordered_json::object();
  confusion["rows"] = rep.labels;
  confusion["columns"] = cols;
  confusion["counts"] = rep.confusion;
  j["confusion_matrix"] = std::move(confusion);
}

void report(const std::vector<TaskExample>& ex, const std::vector<ExampleResult>& res, const Dataset& data,
            const RunStats& stats, TaskMode mode, const FewshotSampler& sampler) {
  const std::vector<std::string>& names = data.label_names;
  std::vector<int> gold, pred, pred_norm;
  for (size_t i = 0; i < ex.size(); ++i) {
    gold.push_back(ex[i].row->label);
    pred.push_back(res[i].prediction);
    pred_norm.push_back(res[i].pred_acc_norm);
  }
  const ClassificationReport rep = classification_report(names, gold, pred);
  std::optional<ClassificationReport> norm;
  if (mode == TaskMode::Loglikelihood) norm = classification_report(names, gold, pred_norm);
  if (!args.output.empty()) write_file_atomic(args.output, predictions_jsonl(ex, res, names, mode));

  const int64_t tokens = mode == TaskMode::Generate ? stats.prompt_tokens + stats.generated_tokens : stats.fed_tokens;
  const double secs = std::max(stats.seconds, 1e-9);
  const std::string template_name = args.template_file.empty() ? "inline" : args.template_file;
  if (args.json) {
    ordered_json j{{"data", args.data},
                   {"template", template_name},
                   {"mode", args.mode},
                   {"model", args.model},
                   {"num_fewshot", sampler.num_fewshot()},
                   {"rows", ex.size()},
                   {"scored", rep.scored},
                   {"accuracy", rep.accuracy},
                   {"correct", rep.correct}};
    if (norm) {
      j["acc_norm"] = norm->accuracy;
      j["correct_norm"] = norm->correct;
    } else {
      j["unmatched"] = rep.unmatched;
      j["match"] = args.match;
    }
    add_report_json(j, rep);
    j["micro_batch_size"] = args.micro_batch_size;
    j["seconds"] = stats.seconds;
    j["examples_per_second"] = ex.size() / secs;
    j["tokens_per_second"] = tokens / secs;
    j["prompt_tokens"] = stats.prompt_tokens;
    if (mode == TaskMode::Generate) j["generated_tokens"] = stats.generated_tokens;
    else j["fed_tokens"] = stats.fed_tokens;
    if (!args.output.empty()) j["output"] = args.output;
    std::cout << j.dump(2) << "\n";
    return;
  }
  std::cout << "task: " << ex.size() << " rows of " << args.data << " (" << rep.scored << " with a gold label), template "
            << template_name << ", " << sampler.num_fewshot() << "-shot, mode " << args.mode << "\n";
  if (rep.scored == 0) std::cout << "no row has a gold label: nothing to score\n";
  else std::cout << format_report(rep, mode == TaskMode::Loglikelihood ? "accuracy (acc)" : "accuracy");
  if (norm && norm->scored) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "acc_norm %.4f (%lld/%lld)\n", norm->accuracy, static_cast<long long>(norm->correct),
                  static_cast<long long>(norm->scored));
    std::cout << buf;
  }
  char buf[256];
  std::snprintf(buf, sizeof buf, "speed: %zu rows in %.2f s: %.2f examples/s, %.0f tokens/s (%s), micro_batch_size %d\n",
                ex.size(), stats.seconds, ex.size() / secs, tokens / secs,
                mode == TaskMode::Generate ? (std::to_string(stats.prompt_tokens) + " prompt + " +
                                              std::to_string(stats.generated_tokens) + " generated tokens").c_str()
                                           : (std::to_string(stats.fed_tokens) + " tokens through the model").c_str(),
                args.micro_batch_size);
  std::cout << buf;
  if (!args.output.empty()) std::cout << "predictions: " << args.output << "\n";
}

// An output file's folder must exist before any work is done, not after the run.
void check_output_folder(const std::string& file, const std::string& flag) {
  const std::filesystem::path parent = std::filesystem::path(file).parent_path();
  std::error_code ec;
  if (!file.empty() && !parent.empty() && !std::filesystem::is_directory(parent, ec))
    throw Error(flag + ": the folder '" + parent.string() + "' does not exist");
}

// ---- rows across ranks ----------------------------------------------------------------------------

void put_result(dist::ByteWriter& out, const ExampleResult& r) {
  out.put(r.output_ids);
  out.put(r.output);
  out.put(r.answer);
  out.put(r.ll);
  out.put(r.is_greedy);
  out.put<int32_t>(r.pred_acc_norm);
  out.put<int32_t>(r.prediction);
}

ExampleResult get_result(dist::ByteReader& in) {
  ExampleResult r;
  r.output_ids = in.get_vector<int32_t>();
  r.output = in.get_string();
  r.answer = in.get_string();
  r.ll = in.get_vector<double>();
  r.is_greedy = in.get_bools();
  r.pred_acc_norm = in.get<int32_t>();
  r.prediction = in.get<int32_t>();
  return r;
}

void put_stats(dist::ByteWriter& out, const RunStats& s) {
  for (int64_t v : {s.examples, s.prompt_tokens, s.generated_tokens, s.fed_tokens, s.forward_calls}) out.put(v);
  out.put(s.seconds);
}

RunStats get_stats(dist::ByteReader& in) {
  RunStats s;
  for (int64_t* v : {&s.examples, &s.prompt_tokens, &s.generated_tokens, &s.fed_tokens, &s.forward_calls}) *v = in.get<int64_t>();
  s.seconds = in.get<double>();
  return s;
}

// Rank 0: the counts of every rank added up, the time of the slowest.
RunStats total_stats(const dist::World& w, const RunStats& mine) {
  RunStats t;
  for (const RunStats& s : dist::gather_items(w, std::vector<RunStats>{mine}, "task counts", put_stats, get_stats)) {
    t.examples += s.examples, t.prompt_tokens += s.prompt_tokens, t.generated_tokens += s.generated_tokens;
    t.fed_tokens += s.fed_tokens, t.forward_calls += s.forward_calls, t.seconds = std::max(t.seconds, s.seconds);
  }
  return t;
}

// The examples this rank runs: whole micro-batches (contiguous), so each batch holds the rows it
// holds in one process and gives the same bits.
dist::Range example_shard(const dist::World& w, size_t examples) {
  const size_t mb = static_cast<size_t>(args.micro_batch_size);
  const dist::Range batches = dist::shard_range((examples + mb - 1) / mb, w);
  announce_shard(w, "task", "micro-batches", batches, (examples + mb - 1) / mb);
  return {std::min(examples, batches.begin * mb), std::min(examples, batches.end * mb)};
}

// Runs this rank's examples (printing rows live on rank 0 as they finish) and, in a distributed
// job, gathers every rank's results on rank 0, which prints the other ranks' rows after its own.
// On rank 0: every example's result and all ranks' counts; elsewhere this rank's.
struct Outcome {
  std::vector<ExampleResult> results;
  RunStats stats;
};
Outcome run_examples(const dist::World& w, const Model& model, const Tokenizer& tokenizer,
                      const std::vector<TaskExample>& all, const std::vector<std::string>& names, TaskMode mode,
                      const GenerationConfig& g, MatchRule match) {
  const dist::Range shard = example_shard(w, all.size());
  const std::vector<TaskExample> examples(all.begin() + static_cast<std::ptrdiff_t>(shard.begin),
                                          all.begin() + static_cast<std::ptrdiff_t>(shard.end));
  const bool print_live = args.print_live && w.is_root();
  Progress progress(examples.size());
  std::ostream& live = args.json ? std::cerr : std::cout;  // --json keeps standard output one JSON document
  Outcome o;
  RunStats& stats = o.stats;
  // At micro-batch 1 the text streams token by token (one process only: rank 0 could stream its own
  // rows alone); larger batches print each row when its batch ends.
  std::optional<LiveText> streamer;
  if (print_live && mode == TaskMode::Generate && args.micro_batch_size == 1 && !w.distributed())
    streamer.emplace(live, tokenizer, examples);
  auto on_batch = [&](const std::vector<ExampleResult>& res, size_t first, size_t count) {
    if (print_live) {
      progress.finish();
      print_live_rows(live, examples, res, names, first, count, mode, streamer ? &*streamer : nullptr);
    }
    progress.update(first + count, stats.seconds);
  };
  if (mode == TaskMode::Generate) {
    GenerateRunOptions ro;
    ro.micro_batch_size = args.micro_batch_size;
    ro.generation = g;
    ro.answer = {match, args.ignore_case, args.answer_regex};
    ro.first_batch = shard.begin / static_cast<size_t>(args.micro_batch_size);  // shards are whole micro-batches
    if (streamer) ro.on_token = [&](size_t example, int32_t token) {
        progress.finish();
        streamer->push(example, token);
      };
    o.results = run_generate(model, tokenizer, examples, ro, &stats, on_batch);
  } else {
    o.results = run_loglikelihood(model, examples, args.micro_batch_size, &stats, on_batch);
  }
  progress.finish();
  if (!w.distributed()) return o;
  o.results = dist::gather_items(w, o.results, "task rows", put_result, get_result);
  stats = total_stats(w, stats);
  if (print_live) print_live_rows(live, all, o.results, names, shard.end, all.size() - shard.end, mode, nullptr);
  return o;
}

int run() {
  apply_threads(args.threads);
  const TaskMode mode = parse_task_mode(args.mode);
  const MatchRule match = parse_match_rule(args.match);
  if (args.micro_batch_size < 1) throw Error("--micro_batch_size must be at least 1, got " + std::to_string(args.micro_batch_size));
  if (args.sequence_length < 0) throw Error("--sequence_length must be positive, got " + std::to_string(args.sequence_length));
  if (mode == TaskMode::Loglikelihood && (args.match != "exact" || args.ignore_case || !args.answer_regex.empty()))
    throw Error("--match, --ignore_case and --answer_regex apply to --mode generate (loglikelihood mode scores the choices)");

  const Template t = load_task_template();
  const DatasetOptions dopt = dataset_options(t);
  const Dataset data = load_dataset(args.data, dopt);
  check_fields(t, data.fields, args.data);
  check_output_folder(args.write_training_csv, "--write_training_csv");
  if (!args.write_training_csv.empty()) return write_training_csv(t, data);
  if (args.model.empty()) throw Error("--model is required (only --write_training_csv runs without a model)");
  const dist::World& w = sharded_world(args.model, args.adapter);
  if (w.is_root()) check_output_folder(args.output, "--output");  // rank 0 alone writes it

  std::optional<Dataset> fewshot_data;
  if (!args.fewshot_file.empty()) {
    DatasetOptions fo = dopt;
    fo.label_names = data.label_names;  // the examples' targets use the evaluated labels' names
    fo.format = DataFormat::Auto;
    fewshot_data = load_dataset(args.fewshot_file, fo);
    check_fields(t, fewshot_data->fields, args.fewshot_file);
  }
  FewshotOptions fs;
  fs.num_fewshot = args.num_fewshot;
  fs.seed = args.fewshot_seed;
  if (!args.fewshot_ids.empty())
    for (int32_t id : parse_ids(args.fewshot_ids, "--fewshot_ids")) fs.ids.push_back(id);
  const FewshotSampler sampler(t, data, fewshot_data ? &*fewshot_data : nullptr, fs);
  const std::vector<const Row*> rows = selected_rows(data);

  auto model = load_model(args.model, args.dtype, args.adapter);
  const auto tokenizer = load_tokenizer_for_model(args.model, model->vocab_size());
  if (!tokenizer) throw Error("--model: the folder '" + args.model + "' has no tokenizer (vocab.json + merges.txt or tokenizer.json)");

  GenerationConfig g = args.gen.build(model->config(), args.model);
  if (!args.gen.max_new_tokens && !args.gen.max_length) {
    g.max_length.reset();
    g.max_new_tokens = kDefaultOutputLength;
  }
  PrepareOptions po;
  po.mode = mode;
  po.max_positions = model->max_positions();
  po.sequence_length = args.sequence_length;
  po.new_tokens = g.max_new_tokens ? *g.max_new_tokens : 0;
  if (mode == TaskMode::Loglikelihood) po.prefix_token = prefix_token_id(&*tokenizer, model->config());
  const std::vector<TaskExample> examples = prepare_examples(t, sampler, rows, *tokenizer, data.label_names, po);
  if (mode == TaskMode::Generate && !g.max_new_tokens)
    for (const TaskExample& e : examples)  // --max_length: the total length must leave room for an answer
      if (static_cast<int>(e.prompt_ids.size()) >= *g.max_length)
        throw Error(e.row->name() + ": the prompt is " + std::to_string(e.prompt_ids.size()) + " tokens, not less than --max_length " +
                    std::to_string(*g.max_length) + ": nothing would be generated (use --output_length)");

  const Outcome o = run_examples(w, *model, *tokenizer, examples, data.label_names, mode, g, match);
  if (!w.is_root()) return 0;
  report(examples, o.results, data, o.stats, mode, sampler);
  return 0;
}

Command command{"task", "NLP tasks: a dataset through a prompt template, scored by generation or log-likelihood, with accuracy",
                setup, run};

}  // namespace
}  // namespace lmforge::cli
