// run_clm.py's data pipeline (read by extension, tokenize, group_texts), the data of every finetune
// mode, evaluation alone and eval_results.json. See include/lmforge/train/run_clm.h.
#include "lmforge/train/run_clm.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <iostream>
#include <optional>

#include <nlohmann/json.hpp>

#include "io/io_util.h"
#include "lmforge/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/model/config.h"
#include "lmforge/model/weights.h"
#include "lmforge/tokenizer/tokenizer.h"
#include "lmforge/train/backprop.h"
#include "lmforge/train/train_state.h"

namespace lmforge {
namespace {

namespace fs = std::filesystem;

enum class Format { Csv, Json, Txt };

std::optional<Format> format_of(const fs::path& file) {
  std::string ext = file.extension().string();
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ext == ".csv") return Format::Csv;
  if (ext == ".json" || ext == ".jsonl") return Format::Json;
  if (ext == ".txt") return Format::Txt;
  return std::nullopt;
}

// `wanted`, or run_clm.py's choice: `text` when there is one, else the first column.
std::string pick_column(const std::vector<std::string>& columns, const std::string& wanted, const fs::path& file,
                        const std::string& flag) {
  const auto has = [&](const std::string& c) { return std::find(columns.begin(), columns.end(), c) != columns.end(); };
  if (!wanted.empty()) {
    if (has(wanted)) return wanted;
    io::fail(file.string(), "no column '" + io::printable(wanted) + "' (columns: " + column_list(columns) + "); " + flag +
                                " needs the text column of the training file");
  }
  if (has("text")) return "text";
  if (columns.empty()) io::fail(file.string(), "no columns");
  return columns.front();
}

void check_utf8(const std::string& text, const std::string& where, const std::string& column) {
  if (!is_valid_utf8(text)) io::fail(where, "column '" + io::printable(column) + "' is not valid UTF-8");
}

TextFileRows read_csv(const fs::path& file, const std::string& column, const std::string& flag) {
  CsvReader reader(file);
  std::vector<std::string> header;
  if (!reader.next(header)) io::fail(file.string(), "empty CSV file (no header row)");
  TextFileRows out;
  out.column = pick_column(header, column, file, flag);
  const size_t col = static_cast<size_t>(std::find(header.begin(), header.end(), out.column) - header.begin());
  std::vector<std::string> fields;
  while (reader.next(fields)) {
    const std::string where = file.string() + ":" + std::to_string(reader.line());
    if (fields.size() != header.size())
      io::fail(where, std::to_string(fields.size()) + " fields, the header has " + std::to_string(header.size()));
    check_utf8(fields[col], where, out.column);
    out.texts.push_back(std::move(fields[col]));
    out.lines.push_back(reader.line());
  }
  return out;
}

// JSON Lines, or one array of objects (datasets' json loader reads both).
TextFileRows read_json(const fs::path& file, const std::string& column, const std::string& flag) {
  const std::string text = io::read_text_file(file, "data file");
  std::vector<std::pair<nlohmann::ordered_json, int64_t>> rows;  // object, line
  const size_t first = text.find_first_not_of(" \t\r\n");
  try {
    if (first != std::string::npos && text[first] == '[') {
      const auto all = nlohmann::ordered_json::parse(text);
      const int64_t line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(first), '\n');
      for (const auto& row : all) rows.emplace_back(row, line);
    } else {
      int64_t line = 0;
      for (size_t b = 0; b < text.size();) {
        size_t e = text.find('\n', b);
        if (e == std::string::npos) e = text.size();
        ++line;
        const std::string_view l(text.data() + b, e - b);
        if (l.find_first_not_of(" \t\r") != std::string_view::npos) {
          try {
            rows.emplace_back(nlohmann::ordered_json::parse(l), line);
          } catch (const nlohmann::json::exception& ex) {
            io::fail(file.string() + ":" + std::to_string(line), std::string("invalid JSON: ") + ex.what());
          }
        }
        b = e + 1;
      }
    }
  } catch (const nlohmann::json::exception& ex) {
    io::fail(file.string(), std::string("invalid JSON: ") + ex.what());
  }
  TextFileRows out;
  std::vector<std::string> columns;
  if (!rows.empty() && rows.front().first.is_object())
    for (const auto& [key, value] : rows.front().first.items()) columns.push_back(key);
  for (const auto& [row, line] : rows) {
    const std::string where = file.string() + ":" + std::to_string(line);
    if (!row.is_object()) io::fail(where, "expected a JSON object per row, got " + io::printable(row.dump(), 60));
    if (out.column.empty()) out.column = pick_column(columns, column, file, flag);
    const auto it = row.find(out.column);
    if (it == row.end()) io::fail(where, "a row without column '" + io::printable(out.column) + "'");
    if (!it->is_string())
      io::fail(where, "column '" + io::printable(out.column) + "' must be a string, got " + io::printable(it->dump(), 60));
    out.texts.push_back(it->get<std::string>());
    out.lines.push_back(line);
  }
  return out;
}

// datasets' text loader with keep_linebreaks=True: lines keep their "\n"; "\r\n" and "\r" read as "\n".
TextFileRows read_txt(const fs::path& file, const std::string& column, const std::string& flag) {
  TextFileRows out;
  out.column = pick_column({"text"}, column, file, flag);
  const std::string raw = io::read_text_file(file, "data file");
  std::string line;
  int64_t number = 1;
  for (size_t i = 0; i < raw.size(); ++i) {
    const bool cr = raw[i] == '\r';
    if (!cr && raw[i] != '\n') {
      line += raw[i];
      continue;
    }
    if (cr && i + 1 < raw.size() && raw[i + 1] == '\n') ++i;
    line += '\n';
    check_utf8(line, file.string() + ":" + std::to_string(number), out.column);
    out.texts.push_back(std::move(line));
    out.lines.push_back(number++);
    line.clear();
  }
  if (!line.empty()) {
    check_utf8(line, file.string() + ":" + std::to_string(number), out.column);
    out.texts.push_back(std::move(line));
    out.lines.push_back(number);
  }
  return out;
}

std::vector<std::vector<int32_t>> tokenize_rows(const std::vector<std::string>& texts, const Tokenizer& tok,
                                                const std::string& where) {
  const int64_t n = static_cast<int64_t>(texts.size());
  std::vector<std::vector<int32_t>> ids(texts.size());
  std::string first_error;
#pragma omp parallel for schedule(dynamic, 64)
  for (int64_t i = 0; i < n; ++i) {
    try {
      ids[static_cast<size_t>(i)] = tok.encode(texts[static_cast<size_t>(i)]);
    } catch (const std::exception& e) {
#pragma omp critical(lmforge_run_clm_error)
      if (first_error.empty()) first_error = e.what();
    }
  }
  if (!first_error.empty()) io::fail(where, "tokenizing: " + first_error);
  return ids;
}

struct Grouped {
  std::vector<Example> blocks;
  int64_t rows = 0, tokens = 0;  // tokens of the rows before grouping
};

Grouped group_rows(const std::vector<std::string>& texts, const Tokenizer& tok, int block, const std::string& where) {
  Grouped g;
  const auto ids = tokenize_rows(texts, tok, where);
  g.rows = static_cast<int64_t>(ids.size());
  for (const auto& r : ids) g.tokens += static_cast<int64_t>(r.size());
  for (auto& b : group_texts(ids, block)) g.blocks.push_back({std::move(b), 0});
  return g;
}

std::string describe(const std::string& file, const std::string& column, const Grouped& g, int block, const char* use) {
  return file + " (run_clm): " + std::to_string(g.rows) + " rows of column '" + column + "', " +
         std::to_string(g.tokens) + " tokens -> " + std::to_string(g.blocks.size()) +
         (g.blocks.size() == 1 ? " block of " : " blocks of ") + std::to_string(block) + " tokens for " + use;
}

[[noreturn]] void no_blocks(const std::string& file, const Grouped& g, int block) {
  io::fail(file, std::to_string(g.tokens) + " tokens in " + std::to_string(g.rows) + " rows make no block of " +
                     std::to_string(block) + " tokens (each " + std::to_string(kRunClmGroupRows) +
                     " rows' remainder is dropped, as in run_clm.py); use a smaller --block_size or more data");
}

TrainingData load_run_clm(const TrainConfig& cfg, int n_positions, const Tokenizer& tok, bool need_train) {
  const int block = loader_options(cfg, n_positions, 0).block_size;
  TrainingData out;
  Dataset& ds = out.data;
  ds.eos_id = tok.eos_id().value_or(0);
  // run_clm.py picks the column from the training file (from the validation file when not training).
  std::vector<std::string> train_texts, val_texts;
  std::string column;
  if (need_train || cfg.validation_file.empty()) {
    TextFileRows rows = read_text_file_rows(cfg.data_path, "", data_flag(cfg));
    column = rows.column;
    if (cfg.validation_file.empty()) {
      const auto [train_idx, val_idx] = split_indices(static_cast<int64_t>(rows.texts.size()), cfg.validation_fraction, cfg.seed);
      for (int64_t i : train_idx) train_texts.push_back(std::move(rows.texts[static_cast<size_t>(i)]));
      for (int64_t i : val_idx) val_texts.push_back(std::move(rows.texts[static_cast<size_t>(i)]));
    } else {
      train_texts = std::move(rows.texts);
    }
  }
  if (!cfg.validation_file.empty()) {
    TextFileRows rows = read_text_file_rows(cfg.validation_file, column, "--validation_file");
    column = rows.column;
    val_texts = std::move(rows.texts);
  }
  DataSummary& s = ds.summary;
  s.file = cfg.data_path;
  s.column = column;
  if (need_train) {
    Grouped g = group_rows(train_texts, tok, block, cfg.data_path);
    if (g.blocks.empty()) no_blocks(cfg.data_path, g, block);
    out.summary.push_back(describe(cfg.data_path, column, g, block, "training"));
    s.train_examples = static_cast<int64_t>(g.blocks.size());
    s.train_tokens = s.train_examples * block;
    ds.train = std::move(g.blocks);
  }
  if (!val_texts.empty()) {
    const std::string file = cfg.validation_file.empty() ? cfg.data_path + " (validation split)" : cfg.validation_file;
    Grouped g = group_rows(val_texts, tok, block, file);
    const bool used = will_evaluate(cfg) || (need_train && eval_strategy(cfg) != IntervalStrategy::No);
    if (g.blocks.empty() && used) no_blocks(file, g, block);
    out.summary.push_back(describe(file, column, g, block, "validation"));
    s.validation_examples = static_cast<int64_t>(g.blocks.size());
    s.validation_tokens = s.validation_examples * block;
    ds.validation = std::move(g.blocks);
  }
  return out;
}

}  // namespace

void check_text_file_extension(const fs::path& file, const std::string& flag) {
  if (format_of(file)) return;
  const std::string ext = file.extension().string();
  io::fail(file.string(), flag + " must be a .csv, .json, .jsonl or .txt file (the extension says how it is read), got '" +
                              io::printable(ext.empty() ? file.filename().string() : ext, 40) + "'");
}

TextFileRows read_text_file_rows(const fs::path& file, const std::string& column, const std::string& flag) {
  check_text_file_extension(file, flag);
  const Format format = *format_of(file);
  std::error_code ec;
  if (!fs::exists(file, ec)) io::fail(file.string(), "no such file (" + flag + ")");
  TextFileRows out = format == Format::Csv    ? read_csv(file, column, flag)
                     : format == Format::Json ? read_json(file, column, flag)
                                              : read_txt(file, column, flag);
  if (out.texts.empty()) io::fail(file.string(), "no rows (" + flag + ")");
  return out;
}

std::vector<std::vector<int32_t>> group_texts(const std::vector<std::vector<int32_t>>& rows, int block_size,
                                              size_t group_rows) {
  if (block_size <= 0) throw Error("block_size must be positive, got " + std::to_string(block_size));
  if (group_rows == 0) throw Error("group_texts: group_rows must be positive");
  const size_t bs = static_cast<size_t>(block_size);
  std::vector<std::vector<int32_t>> out;
  std::vector<int32_t> cat;
  for (size_t g = 0; g < rows.size(); g += group_rows) {
    cat.clear();
    for (size_t r = g; r < std::min(rows.size(), g + group_rows); ++r) cat.insert(cat.end(), rows[r].begin(), rows[r].end());
    for (size_t i = 0; i + bs <= cat.size(); i += bs) out.emplace_back(cat.begin() + static_cast<std::ptrdiff_t>(i),
                                                                      cat.begin() + static_cast<std::ptrdiff_t>(i + bs));
  }
  return out;
}

TrainingData load_training_data(const TrainConfig& cfg, int n_positions, const Tokenizer& tok, bool need_train) {
  if (cfg.run_clm) return load_run_clm(cfg, n_positions, tok, need_train);
  TrainingData out;
  DataOptions o = data_options(cfg, n_positions);
  if (!cfg.validation_file.empty()) o.validation_fraction = 0;  // the validation set is its own file
  if (need_train || cfg.validation_file.empty()) {
    out.data = load_dataset(o, tok);
    out.summary.push_back(out.data.summary.to_string());
  }
  if (!cfg.validation_file.empty()) {
    std::error_code ec;
    if (!fs::exists(cfg.validation_file, ec)) io::fail(cfg.validation_file, "no such file (--validation_file)");
    DataOptions v = o;  // the same column and text format; every row
    v.data_path = cfg.validation_file;
    v.max_rows = 0;
    v.sample = SampleMode::First;
    Dataset vd = load_dataset(v, tok);
    const DataSummary& s = vd.summary;
    out.summary.push_back(s.file + ": " + std::to_string(s.selected) + " validation rows from column '" + s.column + "' (" +
                          std::to_string(s.records_read) + " read; skipped " + std::to_string(s.skipped()) + "; " +
                          std::to_string(s.truncated) + " truncated), " + std::to_string(s.train_tokens) + " tokens");
    out.data.validation = std::move(vd.train);
    out.data.summary.validation_examples = static_cast<int64_t>(out.data.validation.size());
    out.data.summary.validation_tokens = s.train_tokens;
    out.data.eos_id = vd.eos_id;
  }
  if (!need_train) out.data.train.clear();
  return out;
}

double validation_loss(const DataLoader& val, const std::function<float(const TrainBatch&)>& loss_of) {
  double sum = 0;
  int64_t rows = 0;
  for (int64_t b = 0; b < val.batches_per_epoch(); ++b) {
    const TrainBatch batch = val.batch_at(0, b);
    const float loss = loss_of(batch);
    if (std::isnan(loss)) continue;  // a batch with no targets
    sum += static_cast<double>(loss) * batch.B;
    rows += batch.B;
  }
  return rows ? sum / rows : NAN;
}

void write_eval_results(const fs::path& dir, double eval_loss, int64_t eval_samples, const double* epoch) {
  nlohmann::json j;  // std::map-backed: keys sorted, as json.dump(..., sort_keys=True)
  j["eval_loss"] = eval_loss;
  j["eval_samples"] = eval_samples;
  // math.exp(eval_loss), inf on overflow (run_clm.py); JSON has no inf, so it is written as null.
  const double ppl = std::exp(eval_loss);
  j["perplexity"] = std::isfinite(ppl) ? nlohmann::json(ppl) : nlohmann::json(nullptr);
  if (epoch) j["epoch"] = *epoch;
  write_file_atomic(dir / "eval_results.json", j.dump(4) + "\n");
}

FinetuneResult evaluate_only(const TrainConfig& given, const FinetuneHooks& hooks) {
  TrainConfig cfg = given;
  // run_clm.py --do_eval --validation_file FILE (no training file): that file, read as run_clm.py does.
  if (cfg.data_path.empty()) cfg.run_clm = true;
  const auto print = [&](const std::string& line) {
    if (hooks.print) hooks.print(line, false);
    else std::cerr << line << "\n" << std::flush;
  };
  const fs::path model = cfg.model;
  const Tokenizer tok = Tokenizer::from_dir(cfg.tokenizer.empty() ? model : fs::path(cfg.tokenizer));
  const ModelConfig mc = load_model_config(model / "config.json");
  if (tok.vocab_size() > mc.vocab_size)
    throw Error("the tokenizer's " + std::to_string(tok.vocab_size()) + " tokens exceed the model's vocab_size " +
                std::to_string(mc.vocab_size));
  ModelWeights w = allocate_weights(mc);
  load_weights(Checkpoint::open(model), mc, w);
  print("model: " + cfg.model + " (evaluation only: --do_eval without --do_train)");
  const TrainingData td = load_training_data(cfg, mc.n_positions, tok, /*need_train=*/false);
  for (const auto& line : td.summary) print(line);
  if (td.data.validation.empty()) throw Error("--do_eval: the validation set is empty");
  LoaderOptions vo = loader_options(cfg, mc.n_positions, td.data.eos_id);
  vo.shuffle = false;
  const DataLoader val(td.data.validation, vo);
  TrainWorkspace ws(TrainOptions{cfg.bfloat16 || cfg.fp16});
  const double loss = validation_loss(val, [&](const TrainBatch& b) { return evaluate_loss(mc, w, b, ws); });
  std::error_code ec;
  fs::create_directories(cfg.save_path, ec);
  if (!fs::is_directory(cfg.save_path, ec)) throw Error("--save_path: cannot create folder '" + cfg.save_path + "'");
  write_eval_results(cfg.save_path, loss, val.num_rows());
  char buf[160];
  std::snprintf(buf, sizeof buf, "eval_loss %.4f, perplexity %.2f (eval_samples %lld)", loss, std::exp(loss),
                static_cast<long long>(val.num_rows()));
  print(std::string(buf) + "; written to " + (fs::path(cfg.save_path) / "eval_results.json").string());
  FinetuneResult r;
  r.final_train_loss = NAN;
  r.final_eval_loss = loss;
  r.output_dir = cfg.save_path;
  return r;
}

}  // namespace lmforge
