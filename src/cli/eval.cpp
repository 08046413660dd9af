// lmforge eval rouge|bleu|perplexity: the metrics of seed 001's evaluation, computed as the
// reference packages do (rouge-score / HF evaluate, sacrebleu, HF's perplexity recipe).
// How every number is computed: docs/EVAL.md. lmforge eval fields: per-field exact match of the
// extraction workflow's records (seed 004; docs/EXTRACTION.md).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "cli/distributed.h"
#include "lmforge/error.h"
#include "lmforge/eval/bleu.h"
#include "lmforge/eval/perplexity.h"
#include "lmforge/eval/rouge.h"
#include "lmforge/eval/training_record.h"
#include "lmforge/model/model.h"
#include "lmforge/tasks/dataset.h"
#include "lmforge/tasks/fields.h"
#include "lmforge/train/data.h"

namespace lmforge::cli {
namespace {

struct RougeArgs {
  std::string predictions, references;
  std::optional<bool> use_stemmer;
  std::vector<std::string> rouge_types = eval::kDefaultRougeTypes;
  std::optional<uint32_t> bootstrap_seed;
  bool per_pair = false;
  bool json = false;
};

struct BleuArgs {
  std::string predictions;
  std::vector<std::string> references;
  std::string tokenize = "13a", smooth_method = "exp";
  std::optional<double> smooth_value;
  std::optional<bool> lowercase, effective_order;
  bool sentence = false;
  bool json = false;
};

struct PerplexityArgs {
  std::string model, dtype = "auto";
  std::string adapter;  // --adapter: PEFT LoRA folder applied unmerged
  std::optional<std::string> text, file, data_path;
  int64_t max_rows = 0;
  std::optional<int> stride, max_length;  // unset: the library's defaults
  std::optional<std::string> prefix, suffix, column_flag;  // unset: the training record's, else none
  std::optional<bool> append_eos;                          // unset: true for CSV rows of a finetuned model
  int threads = 0;
  bool json = false;
};

struct FieldsArgs {
  std::string predictions, references;
  std::vector<std::string> fields = tasks::default_scored_fields();
  std::string prompt_column = "prompt";
  std::string text_column;
  bool json = false;
};

struct Args {
  CLI::App *rouge = nullptr, *bleu = nullptr, *perplexity = nullptr, *fields = nullptr;
  RougeArgs r;
  BleuArgs b;
  PerplexityArgs p;
  FieldsArgs f;
};

Args& args() {
  static Args a;
  return a;
}

// ---- input files -------------------------------------------------------------------------------

// The lines of a text file (without their "\n" / "\r\n"), one segment per line as sacrebleu and
// HF evaluate scripts read them. A missing, unreadable or empty file and invalid UTF-8 are errors.
std::vector<std::string> read_lines(const std::string& path, const std::string& flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(flag + ": cannot open " + path);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!is_valid_utf8(line)) throw Error(flag + ": " + path + ":" + std::to_string(lines.size() + 1) + " is not valid UTF-8");
    lines.push_back(std::move(line));
  }
  if (in.bad()) throw Error(flag + ": cannot read " + path);
  if (lines.empty()) throw Error(flag + ": " + path + " is empty");
  return lines;
}

void check_same_length(const std::string& pred_path, size_t pred_lines, const std::string& ref_path, size_t ref_lines) {
  if (pred_lines != ref_lines)
    throw Error("line counts differ: predictions " + pred_path + " has " + std::to_string(pred_lines) +
                " lines but references " + ref_path + " has " + std::to_string(ref_lines));
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

nlohmann::json score_json(const eval::RougeScore& s) {
  return {{"precision", s.precision}, {"recall", s.recall}, {"fmeasure", s.fmeasure}};
}

// ---- rouge ---------------------------------------------------------------------------------------

void setup_rouge(CLI::App& app, RougeArgs& a) {
  app.add_option("--predictions", a.predictions, "Predictions file, one text per line")->required();
  app.add_option("--references", a.references, "References file, one text per line (same count)")->required();
  add_bool_option(app, "--use_stemmer", a.use_stemmer,
                  "Porter-stem tokens longer than 3 characters (default false, as rouge-score; the summarization evaluation workflow passes true)");
  app.add_option("--rouge_types", a.rouge_types, "rouge1..rouge9, rougeL, rougeLsum (default: HF evaluate's four)")
      ->delimiter(',');
  app.add_option("--bootstrap_seed", a.bootstrap_seed,
                 "Also report HF evaluate's default aggregate: BootstrapAggregator mid after numpy.random.seed(N)");
  app.add_flag("--per_pair", a.per_pair, "Also print every pair's scores (HF evaluate use_aggregator=False)");
  app.add_flag("--json", a.json, "Print JSON");
}

int run_rouge(const RougeArgs& a) {
  const auto preds = read_lines(a.predictions, "--predictions");
  const auto refs = read_lines(a.references, "--references");
  check_same_length(a.predictions, preds.size(), a.references, refs.size());
  for (const std::string& t : a.rouge_types)
    if (!eval::is_rouge_type(t)) throw Error("--rouge_types: unknown type \"" + t + "\" (expected rouge1..rouge9, rougeL, rougeLsum)");
  const bool stem = a.use_stemmer.value_or(false);
  const eval::RougeCorpus corpus = eval::rouge_corpus(preds, refs, a.rouge_types, stem);
  std::vector<eval::RougeBootstrap> boot;
  if (a.bootstrap_seed) boot = eval::rouge_bootstrap(corpus, *a.bootstrap_seed);

  if (a.json) {
    nlohmann::json out{{"pairs", preds.size()}, {"use_stemmer", stem}, {"aggregate", "mean"}};
    for (size_t t = 0; t < corpus.types.size(); ++t) {
      out[corpus.types[t]] = score_json(corpus.mean[t]);
      if (!boot.empty())
        out["bootstrap"][corpus.types[t]] = {{"low", score_json(boot[t].low)}, {"mid", score_json(boot[t].mid)},
                                             {"high", score_json(boot[t].high)}};
    }
    if (!boot.empty()) out["bootstrap"]["seed"] = *a.bootstrap_seed;
    if (a.per_pair) {
      out["per_pair"] = nlohmann::json::array();
      for (const auto& pair : corpus.per_pair) {
        nlohmann::json row;
        for (size_t t = 0; t < corpus.types.size(); ++t) row[corpus.types[t]] = score_json(pair[t]);
        out["per_pair"].push_back(row);
      }
    }
    std::cout << out.dump() << "\n";
    return 0;
  }
  std::cout << "ROUGE (rouge-score, use_stemmer=" << (stem ? "true" : "false") << "), mean over " << preds.size()
            << " pairs\n";
  for (size_t t = 0; t < corpus.types.size(); ++t) {
    const auto& m = corpus.mean[t];
    std::cout << corpus.types[t] << ": F1 " << fixed(m.fmeasure, 6) << "  P " << fixed(m.precision, 6) << "  R "
              << fixed(m.recall, 6);
    if (!boot.empty()) std::cout << "  bootstrap mid F1 " << fixed(boot[t].mid.fmeasure, 6);
    std::cout << "\n";
  }
  if (a.per_pair)
    for (size_t i = 0; i < corpus.per_pair.size(); ++i) {
      std::cout << "pair " << i + 1 << ":";
      for (size_t t = 0; t < corpus.types.size(); ++t)
        std::cout << " " << corpus.types[t] << " " << fixed(corpus.per_pair[i][t].fmeasure, 6);
      std::cout << "\n";
    }
  return 0;
}

// ---- bleu ----------------------------------------------------------------------------------------

void setup_bleu(CLI::App& app, BleuArgs& a) {
  app.add_option("--predictions", a.predictions, "Hypotheses file, one segment per line")->required();
  app.add_option("--references", a.references, "Reference file(s): one per reference stream, same line count")
      ->required()
      ->expected(1, -1);
  app.add_option("--tokenize", a.tokenize, "sacrebleu tokenizer: 13a (default), intl, char, none")
      ->check(CLI::IsMember({"13a", "intl", "char", "none"}));
  app.add_option("--smooth_method", a.smooth_method, "exp (default), floor, add-k, none")
      ->check(CLI::IsMember({"exp", "floor", "add-k", "none"}));
  app.add_option("--smooth_value", a.smooth_value, "floor / add-k value (default 0.1 / 1)");
  add_bool_option(app, "--lowercase", a.lowercase, "Lowercase before tokenizing (default false)");
  add_bool_option(app, "--effective_order", a.effective_order,
                  "Average only the n-gram orders the hypothesis has (default false; --sentence: true)");
  app.add_flag("--sentence", a.sentence, "Score every line on its own (sacrebleu.sentence_bleu) instead of the corpus");
  app.add_flag("--json", a.json, "Print JSON");
}

nlohmann::json bleu_json(const eval::BleuScore& s) {
  return {{"name", "BLEU"},        {"score", s.score},   {"counts", s.counts},         {"totals", s.totals},
          {"precisions", s.precisions}, {"bp", s.bp},    {"ratio", s.ratio},           {"sys_len", s.sys_len},
          {"ref_len", s.ref_len},  {"signature", s.signature}, {"formatted", eval::format_bleu(s)}};
}

int run_bleu(const BleuArgs& a) {
  const auto hyps = read_lines(a.predictions, "--predictions");
  std::vector<std::vector<std::string>> streams;
  for (const std::string& path : a.references) {
    streams.push_back(read_lines(path, "--references"));
    check_same_length(a.predictions, hyps.size(), path, streams.back().size());
  }
  eval::BleuOptions opt;
  opt.tokenizer = eval::parse_bleu_tokenizer(a.tokenize);
  opt.smooth = eval::parse_bleu_smooth(a.smooth_method);
  if (a.smooth_value) {
    if (*a.smooth_value < 0) throw Error("--smooth_value must be >= 0");
    opt.smooth_value = *a.smooth_value;
  }
  opt.lowercase = a.lowercase.value_or(false);
  opt.effective_order = a.effective_order.value_or(a.sentence);

  std::vector<eval::BleuScore> scores;
  if (a.sentence) {
    for (size_t i = 0; i < hyps.size(); ++i) {
      std::vector<std::string> refs;
      for (const auto& s : streams) refs.push_back(s[i]);
      scores.push_back(eval::sentence_bleu(hyps[i], refs, opt));
    }
  } else {
    scores.push_back(eval::corpus_bleu(hyps, streams, opt));
  }
  if (a.json) {
    if (a.sentence) {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& s : scores) out.push_back(bleu_json(s));
      std::cout << out.dump() << "\n";
    } else {
      std::cout << bleu_json(scores[0]).dump() << "\n";
    }
    return 0;
  }
  for (const auto& s : scores) std::cout << eval::format_bleu(s) << "\n";
  std::cout << scores[0].signature << "\n";
  return 0;
}

// ---- perplexity ----------------------------------------------------------------------------------

constexpr const char* kPerplexityHelp =
    "Perplexity = exp(mean next-token cross-entropy), as the evaluation workflow's calculate_perplexity (no special tokens "
    "added). A text longer than --max_length uses HF's sliding window: windows of --max_length tokens start "
    "every --stride tokens; each window scores only the tokens after the previous window's end; "
    "the result is exp(total NLL / scored tokens) (token-weighted). --data_path: one perplexity per row and the "
    "corpus value exp(total NLL of all rows / all scored tokens). A model folder written by `lmforge finetune` "
    "records its prefix, suffix and text column (lmforge_output.json); they are the defaults here: each CSV row is "
    "scored as finetune trained on it, prefix + row + suffix + <|endoftext|> (every token after the first, so the "
    "value is exp(finetune's validation loss) on those rows); a --text/--file is scored after the prefix, which "
    "is context only (not scored), with no suffix or eos unless --suffix/--append_eos say so. --prefix ''"
    " --suffix '' --append_eos false score the plain text. The format used is printed on stderr.";

void setup_perplexity(CLI::App& app, PerplexityArgs& a) {
  app.footer(kPerplexityHelp);
  app.add_option("--model", a.model, "Model folder (config.json, weights, tokenizer)")->required();
  auto* text = app.add_option("--text", a.text, "The text to score");
  auto* file = app.add_option("--file", a.file, "Score this file's content as one text (final newline dropped)");
  auto* csv = app.add_option("--data_path", a.data_path, "Score every row of a CSV column");
  text->excludes(file, csv);
  file->excludes(csv);
  app.add_option("--column", a.column_flag,
                 "--data_path: the text column (default: the training record's text_column, else headline_text)");
  app.add_option("--max_rows", a.max_rows, "--data_path: first N usable rows only (default: all)");
  app.add_option("--max_length", a.max_length, "Window length (default: the model's n_positions)");
  app.add_option("--stride", a.stride, "Window step, 1..max_length (default: max_length / 2)");
  app.add_option("--prefix", a.prefix,
                 "Text before each row (scored) or before --text/--file (context, not scored); default: the "
                 "training record's, else none");
  app.add_option("--suffix", a.suffix,
                 "Text after each row (default: the training record's, else none) or after --text/--file "
                 "(default none); scored");
  add_bool_option(app, "--append_eos", a.append_eos,
                  "End each text with the eos token, as finetune's rows (default: true for --data_path rows of a "
                  "model with a training record, else false)");
  app.add_option("--threads", a.threads, "Threads (default: all cores)");
  add_dtype_option(app, a.dtype);
  add_adapter_option(app, a.adapter);
  app.add_flag("--json", a.json, "Print JSON");
}

// A whole file; a missing or unreadable one is an error naming `flag`.
std::string read_whole_file(const std::string& path, const std::string& flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(flag + ": cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(flag + ": cannot read " + path);
  return ss.str();
}

std::string read_text_file(const std::string& path) {
  std::string text = read_whole_file(path, "--file");
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty() && text.back() == '\r') text.pop_back();
  if (text.empty()) throw Error("--file: " + path + " is empty");
  if (!is_valid_utf8(text)) throw Error("--file: " + path + " is not valid UTF-8");
  return text;
}

nlohmann::json result_json(const eval::PerplexityResult& r) {
  if (r.tokens == 0) return {{"perplexity", nullptr}, {"tokens", 0}};
  nlohmann::json windows = nlohmann::json::array();
  for (const auto& w : r.windows)
    windows.push_back({{"begin", w.begin}, {"end", w.end}, {"trg_len", w.trg_len}, {"scored", w.scored}, {"loss", w.loss}});
  return {{"perplexity", r.perplexity}, {"mean_nll", r.mean_nll()}, {"tokens", r.tokens},
          {"window_mean_perplexity", r.window_mean_perplexity}, {"windows", windows}};
}

// The text format of one run: each part from its flag, else from the model's training record,
// else empty. `rows`: CSV rows (finetune's format, suffix and eos included) or free text (the
// prefix as unscored context; a record's suffix is not added to text the user wrote).
struct ScoringFormat {
  eval::TextFormat format;
  std::string column = "headline_text";
  std::string record_line;  // "lmforge: using finetune's ..." or "" when nothing came from a record
};

ScoringFormat scoring_format(const PerplexityArgs& a, const std::optional<eval::TrainingRecord>& rec, bool rows) {
  ScoringFormat f;
  std::vector<std::pair<std::string, std::string>> taken;
  auto pick = [&](const std::optional<std::string>& flag, const std::optional<std::string>& recorded,
                  const char* name, bool use_record, std::string fallback) {
    if (flag) return *flag;
    if (use_record && recorded) {
      taken.emplace_back(name, eval::quote_text(*recorded));
      return *recorded;
    }
    return fallback;
  };
  const bool have = rec.has_value();
  f.format.prefix = pick(a.prefix, have ? rec->prefix : std::nullopt, "prefix", true, "");
  f.format.suffix = pick(a.suffix, have ? rec->suffix : std::nullopt, "suffix", rows, "");
  f.column = pick(a.column_flag, have ? rec->text_column : std::nullopt, "text_column", rows, "headline_text");
  f.format.append_eos = a.append_eos.value_or(rows && have);
  f.format.prefix_is_context = !rows;
  if (have) f.record_line = eval::record_used_line(*rec, taken);
  return f;
}

// "lmforge: each row is scored as '|HEADLINE| ' + row + '.' + <|endoftext|>", so the format that
// made the number is always on screen.
std::string format_line(const eval::TextFormat& f, bool rows, const std::string& eos_token) {
  const std::string what = rows ? "row" : "text";
  if (f.prefix.empty() && f.suffix.empty() && !f.append_eos)
    return std::string("lmforge: ") + (rows ? "each row" : "the text") + " is scored as given (no prefix, suffix or eos)";
  std::string parts;
  if (!f.prefix.empty())
    parts += rows ? eval::quote_text(f.prefix) + " + " : "context " + eval::quote_text(f.prefix) + " (not scored) + ";
  parts += what;
  if (!f.suffix.empty()) parts += " + " + eval::quote_text(f.suffix);
  if (f.append_eos) parts += " + " + eos_token;
  return std::string("lmforge: ") + (rows ? "each row" : "the text") + " is scored as " + parts;
}

nlohmann::json format_json(const eval::TextFormat& f) {
  return {{"prefix", f.prefix}, {"suffix", f.suffix}, {"append_eos", f.append_eos}, {"prefix_scored", !f.prefix_is_context}};
}

int run_perplexity(const PerplexityArgs& a) {
  if (!a.text && !a.file && !a.data_path) throw Error("perplexity: give --text, --file or --data_path");
  if (a.stride && *a.stride <= 0) throw Error("--stride must be at least 1, got " + std::to_string(*a.stride));
  if (a.max_length && *a.max_length < 2) throw Error("--max_length must be at least 2, got " + std::to_string(*a.max_length));
  const bool rows = a.data_path.has_value();
  const dist::World& w = sharded_world(a.model, a.adapter);
  if (!rows && !w.is_root()) return 0;  // one text is not split: rank 0 scores it, the others idle
  const ScoringFormat sf = scoring_format(a, eval::load_training_record(a.model), rows);
  apply_threads(a.threads);
  const auto model = load_model(a.model, a.dtype, a.adapter);
  const auto tok = load_tokenizer_for_model(a.model, model->vocab_size());
  if (!tok) throw Error("--model: " + a.model + " has no tokenizer (vocab.json + merges.txt or tokenizer.json)");
  if (sf.format.append_eos && !tok->eos_id())
    throw Error("--append_eos: the tokenizer of " + a.model + " has no eos token; pass --append_eos false");
  // Printed once the score exists, so a bad input still gets exactly one line on stderr.
  const auto announce = [&] {
    if (!sf.record_line.empty()) std::cerr << sf.record_line << "\n";
    std::cerr << format_line(sf.format, rows, sf.format.append_eos ? tok->id_to_token(*tok->eos_id()) : "") << std::endl;
  };
  eval::PerplexityOptions opt{a.max_length.value_or(0), a.stride.value_or(0)};

  if (!rows) {
    const std::string text = a.text ? *a.text : read_text_file(*a.file);
    const eval::PerplexityResult r = eval::text_perplexity(*model, *tok, text, opt, sf.format);
    announce();
    if (a.json) {
      nlohmann::json out = result_json(r);
      out["format"] = format_json(sf.format);
      std::cout << out.dump() << "\n";
    } else {
      std::cout << "perplexity " << fixed(r.perplexity, 4) << " (mean NLL " << fixed(r.mean_nll(), 6) << " over "
                << r.tokens << " tokens, " << r.windows.size() << " window" << (r.windows.size() == 1 ? "" : "s") << ")\n";
    }
    return 0;
  }
  DataOptions data;
  data.data_path = *a.data_path;
  data.text_column = sf.column;
  data.max_rows = a.max_rows;
  const TextRows text_rows = read_text_rows(data);
  const std::optional<eval::CorpusPerplexity> corpus = sharded_corpus(w, *model, *tok, text_rows.texts, opt, sf.format, "eval perplexity");
  if (!corpus) return 0;
  const eval::CorpusPerplexity& c = *corpus;
  announce();
  if (a.json) {
    nlohmann::json out{{"perplexity", c.perplexity}, {"mean_nll", c.nll_sum / static_cast<double>(c.tokens)},
                       {"tokens", c.tokens}, {"rows", text_rows.texts.size()}, {"skipped_short", c.skipped},
                       {"mean_row_perplexity", c.mean_row_perplexity}, {"format", format_json(sf.format)},
                       {"per_row", nlohmann::json::array()}};
    for (size_t i = 0; i < c.rows.size(); ++i) {
      nlohmann::json row = result_json(c.rows[i]);
      row["line"] = text_rows.lines[i];
      out["per_row"].push_back(row);
    }
    std::cout << out.dump() << "\n";
    return 0;
  }
  std::cout << "line\ttokens\tperplexity\n";
  for (size_t i = 0; i < c.rows.size(); ++i)
    std::cout << text_rows.lines[i] << "\t" << c.rows[i].tokens << "\t"
              << (c.rows[i].tokens ? fixed(c.rows[i].perplexity, 4) : std::string("nan")) << "\n";
  std::cout << "corpus perplexity " << fixed(c.perplexity, 4) << " (token-weighted: " << c.tokens << " tokens in "
            << text_rows.texts.size() - c.skipped << " rows; " << c.skipped
            << " rows under 2 tokens skipped; mean of row perplexities " << fixed(c.mean_row_perplexity, 4) << ")\n";
  return 0;
}

// ---- fields --------------------------------------------------------------------------------------

constexpr const char* kFieldsHelp =
    "Exact match per field of the extraction workflow's records (docs/EXTRACTION.md). Each prediction is paired "
    "with reference row prompt_index (0-based data row), or, when no line has one, the n-th prediction with row n. "
    "A prediction's fields are its \"fields\" object, else its \"text\" parsed by the --fields rules of lmforge "
    "generate. The reference fields are the columns named like them, or, with --text_column, parsed from that "
    "column (full training texts: the prompt is dropped). Values are compared after trimming surrounding ASCII "
    "whitespace; an absent field equals an empty one, so the report also gives each field's accuracy over the "
    "rows whose reference has a value. Every reference row needs a prediction; several per row "
    "(num_return_sequences) are each scored. When a prediction and its row both have a prompt, the prediction's "
    "must end with the row's. all fields: predictions with every scored field right.";

void setup_fields(CLI::App& app, FieldsArgs& a) {
  app.footer(kFieldsHelp);
  app.add_option("--predictions", a.predictions,
                 "JSON Lines, e.g. lmforge generate --fields output: {prompt_index, prompt, fields | text}")
      ->required();
  app.add_option("--references", a.references,
                 "Reference rows (CSV, TSV or JSONL) with a column per scored field, e.g. make_dataset.mjs's "
                 "validation.csv")
      ->required();
  app.add_option("--fields", a.fields, "Fields to score, comma-separated (default rewrite,title,agency,photographer,date)")
      ->delimiter(',');
  app.add_option("--text_column", a.text_column,
                 "Parse the reference fields from this column (prompt + target texts) instead of field columns");
  app.add_option("--prompt_column", a.prompt_column, "The references' prompt column (default prompt), if they have one");
  app.add_flag("--json", a.json, "Print JSON");
}

int run_fields(const FieldsArgs& a) {
  tasks::FieldsEvalOptions o;
  o.fields = a.fields;
  o.prompt_column = a.prompt_column;
  o.text_column = a.text_column;
  if (o.fields.empty()) throw Error("--fields: no field names given");
  const auto predictions = tasks::parse_field_predictions(read_whole_file(a.predictions, "--predictions"), a.predictions);
  tasks::DatasetOptions d;
  d.label_field = "";  // no label normalisation: every column is text
  d.keep_fields = o.text_column.empty() ? o.fields : std::vector<std::string>{o.text_column};
  d.keep_fields.push_back(o.prompt_column);
  const tasks::Dataset references = tasks::load_dataset(a.references, d);
  const tasks::FieldsEvaluation e = tasks::evaluate_field_predictions(predictions, a.predictions, references, o);

  const auto ratio = [](int64_t correct, int64_t total, double acc) {
    return total ? fixed(acc, 4) + "  (" + std::to_string(correct) + "/" + std::to_string(total) + ")" : std::string("-");
  };
  if (a.json) {
    const auto part = [](int64_t correct, int64_t total, double acc) {
      return nlohmann::ordered_json{{"correct", correct}, {"total", total},
                                    {"accuracy", total ? nlohmann::ordered_json(acc) : nlohmann::ordered_json(nullptr)}};
    };
    nlohmann::ordered_json out{{"predictions", e.predictions},
                               {"references", e.references},
                               {"fields", nlohmann::ordered_json::object()}};
    for (const auto& f : e.score.per_field) {
      out["fields"][f.field] = part(f.correct, f.total, f.accuracy());
      out["fields"][f.field]["with_value"] = part(f.with_value_correct, f.with_value_total, f.with_value_accuracy());
    }
    out["all_fields"] = part(e.score.all_correct, e.score.pairs, e.score.all_accuracy());
    std::cout << out.dump() << "\n";
    return 0;
  }
  // field, all pairs, pairs whose reference has a value; columns padded to the widest entry.
  std::vector<std::array<std::string, 3>> table{{"field", "all rows", "rows with a reference value"}};
  for (const auto& f : e.score.per_field)
    table.push_back({f.field, ratio(f.correct, f.total, f.accuracy()),
                     ratio(f.with_value_correct, f.with_value_total, f.with_value_accuracy())});
  table.push_back({"all fields", ratio(e.score.all_correct, e.score.pairs, e.score.all_accuracy()), ""});
  size_t w0 = 0, w1 = 0;
  for (const auto& r : table) w0 = std::max(w0, r[0].size()), w1 = std::max(w1, r[1].size());
  std::cout << "exact match over " << e.predictions << " predictions of " << e.references << " reference rows";
  if (e.min_per_reference == e.max_per_reference && e.max_per_reference > 1)
    std::cout << " (" << e.max_per_reference << " per row)";
  else if (e.min_per_reference != e.max_per_reference)
    std::cout << " (" << e.min_per_reference << " to " << e.max_per_reference << " per row)";
  std::cout << "\n";
  for (const auto& r : table) {
    std::string line = r[0] + std::string(w0 - r[0].size() + 2, ' ') + r[1];
    if (!r[2].empty()) line += std::string(w1 - r[1].size() + 2, ' ') + r[2];
    std::cout << line << "\n";
  }
  return 0;
}

// ---- command -------------------------------------------------------------------------------------

void setup(CLI::App& app) {
  Args& a = args();
  app.require_subcommand(1);
  a.rouge = app.add_subcommand("rouge", "ROUGE-1/2/L(sum) as rouge-score / HF evaluate");
  a.bleu = app.add_subcommand("bleu", "Corpus (or sentence) BLEU as sacrebleu");
  a.perplexity = app.add_subcommand("perplexity", "Perplexity of a model on a text, file or CSV column");
  a.fields = app.add_subcommand("fields", "Per-field exact match of extracted records (generate --fields output)");
  setup_rouge(*a.rouge, a.r);
  setup_bleu(*a.bleu, a.b);
  setup_perplexity(*a.perplexity, a.p);
  setup_fields(*a.fields, a.f);
}

int run() {
  const Args& a = args();
  if (a.rouge->parsed()) return run_rouge(a.r);
  if (a.bleu->parsed()) return run_bleu(a.b);
  if (a.fields->parsed()) return run_fields(a.f);
  return run_perplexity(a.p);
}

Command command{"eval", "Evaluate: ROUGE, BLEU (sacrebleu), perplexity, extracted fields", setup, run};

}  // namespace
}  // namespace lmforge::cli
