#pragma once
// HF run_clm.py's data pipeline (TrainConfig::run_clm, set by --train_file) and the pieces of its
// command line that are not the training loop: evaluation alone (--do_eval without --do_train) and
// eval_results.json. docs/TRAINING.md "run_clm.py's command line" is the user-facing description.
//
// Reading (datasets' loaders, chosen by the file's extension):
//   .csv          header row, then records (RFC 4180, as data.h's CsvReader); every record must have
//                 the header's field count.
//   .json/.jsonl  JSON Lines: one object per line (blank lines skipped), or one JSON array of
//                 objects; the columns are the first object's keys, in the file's order.
//   .txt          one row per line, the line break kept (run_clm.py's keep_linebreaks=True; "\r\n"
//                 and "\r" read as "\n", as Python's universal newlines); the column is `text`.
// The column is `text` when the file has one, else its first column (run_clm.py's rule), chosen
// from the training file; a validation file must have the same column.
//
// Grouping (run_clm.py's group_texts): each row is tokenized on its own (no prefix, suffix or eos;
// the tokenizer adds no special tokens), then every 1000 consecutive rows (datasets.map's default
// batch of a batched map) are concatenated and cut into blocks of block_size tokens; each group's
// remainder shorter than a block is dropped. Labels are the input ids (the model shifts).
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "lmforge/train/data.h"
#include "lmforge/train/train_config.h"
#include "lmforge/train/trainer.h"

namespace lmforge {

class Tokenizer;
struct ModelConfig;
struct ModelWeights;
class TrainWorkspace;

// The rows datasets.map hands group_texts at once in run_clm.py.
inline constexpr size_t kRunClmGroupRows = 1000;

struct TextFileRows {
  std::string column;              // the column read
  std::vector<std::string> texts;  // one per row, as stored (nothing stripped)
  std::vector<int64_t> lines;      // 1-based line each row starts on
};

// Throws lmforge::Error naming `file` and `flag` unless the extension is csv, json, jsonl or txt.
void check_text_file_extension(const std::filesystem::path& file, const std::string& flag);

// The rows of `file`'s column `column`; "" = `text` when the file has it, else the first column.
// `flag` names the file's flag in messages ("--train_file"). Throws lmforge::Error naming the file
// (and line) for a missing file, an extension other than csv/json/jsonl/txt, a missing column (the
// message names it and lists the file's columns), a row without the column, a value that is not a
// string, malformed CSV/JSON, invalid UTF-8, or a file with no rows.
TextFileRows read_text_file_rows(const std::filesystem::path& file, const std::string& column, const std::string& flag);

// group_texts over rows of token ids, `group_rows` rows at a time (kRunClmGroupRows in run_clm).
std::vector<std::vector<int32_t>> group_texts(const std::vector<std::vector<int32_t>>& rows, int block_size,
                                              size_t group_rows = kRunClmGroupRows);

// run_clm.py's default block size for a model with n_positions positions: min(1024, n_positions);
// a given block_size above n_positions is an error (lmforge does not silently shrink it).
int run_clm_block_size(const TrainConfig& cfg, int n_positions);

// The data a config trains and validates on, for every mode: the headline pipeline (data.h) with
// the validation_fraction split or a --validation_file CSV (all its rows, same format), or
// run_clm.py's pipeline (rows -> blocks, split by validation_fraction before grouping unless a
// validation_file is given). `need_train` false (evaluation alone): the validation side only.
// `summary` holds the lines to print about it.
struct TrainingData {
  Dataset data;
  std::vector<std::string> summary;
};
TrainingData load_training_data(const TrainConfig& cfg, int n_positions, const Tokenizer& tok, bool need_train = true);

// HF Trainer's eval_loss: the mean of per-batch mean losses weighted by rows per batch, each
// batch's mean loss from `loss_of` (NaN: a batch without targets, skipped).
double validation_loss(const DataLoader& val, const std::function<float(const TrainBatch&)>& loss_of);

// Writes DIR/eval_results.json as HF's trainer.save_metrics("eval") does in run_clm.py:
// {"eval_loss", "eval_samples", "perplexity"} (plus "epoch" after training), keys sorted, indent 4.
void write_eval_results(const std::filesystem::path& dir, double eval_loss, int64_t eval_samples,
                        const double* epoch = nullptr);

// --do_eval without --do_train: evaluates cfg.model on the validation set (without a training file,
// the validation_file is read with run_clm.py's pipeline), prints eval_loss and
// perplexity through hooks.print, writes save_path/eval_results.json (creating the folder; nothing
// else is written or removed) and returns final_eval_loss (steps 0).
FinetuneResult evaluate_only(const TrainConfig& cfg, const FinetuneHooks& hooks = {});

}  // namespace lmforge
