#pragma once
// Training data: a headline CSV -> tokenized examples -> a seeded train/validation split ->
// shuffled, padded (or packed) TrainBatches whose order is resumable.
//
// Pipeline (load_dataset):
//   1. The CSV is parsed with libcsv (RFC 4180: quoted fields, "" escapes, commas and newlines
//      inside quotes, CRLF or LF line ends, a UTF-8 BOM before the header). The first record is
//      the header; the text column is chosen by name.
//   2. Each data record is checked in file order. Skipped (and counted in DataSummary, never
//      silently): a record whose field count differs from the header's (`malformed`: a missing
//      column value or an unquoted comma), a text that is not valid UTF-8 (`invalid_utf8`), a text
//      that is empty once trailing whitespace is removed (`empty`). Blank lines are not records.
//   3. Row selection among the usable rows: `first` keeps the first max_rows (reading stops there,
//      so the skip counts cover only the records read); `random` reads the whole file and keeps a
//      seeded uniform sample of max_rows (reservoir sampling), in file order. max_rows <= 0: all.
//   4. Each kept text becomes  prefix + rstrip(text) + suffix  tokenized, then the eos id appended
//      as a token (never encoded from text). HF's reference pipeline also right-strips the text.
//   5. An example longer than max_tokens (the model's n_positions) is cut to its first max_tokens
//      tokens (so it loses its eos) and counted in `truncated`.
//   6. Seeded split: n_val = ceil(validation_fraction * n) (HF train_test_split's rule), chosen by a
//      seeded shuffle; both sides are kept in file order.
// Errors (lmforge::Error, one line naming the file and column): missing/unreadable file, empty
// file, missing column (the message lists the available ones), no usable rows, an unterminated
// quoted field at end of file, a split that leaves no training rows.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "lmforge/train/batch.h"

namespace lmforge {

class Tokenizer;

// ---------------------------------------------------------------------------------------------
// Deterministic random numbers (xoshiro256**, seeded through splitmix64). Unlike std::
// distributions, every derived quantity (below(), shuffle) is specified here, so a seed gives the
// same data order on every platform and standard library. The state round-trips through a string.
class Rng {
 public:
  explicit Rng(uint64_t seed, uint64_t stream = 0);
  uint64_t next();
  uint64_t below(uint64_t n);  // uniform in [0, n), n > 0 (rejection sampling, no modulo bias)
  double uniform();            // [0, 1), 53 random bits
  template <typename T>
  void shuffle(std::vector<T>& v) {  // Fisher-Yates from the back
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }
  // "xoshiro256**:<16 hex>:<16 hex>:<16 hex>:<16 hex>"; from_state throws lmforge::Error on a
  // malformed string (naming `where`).
  std::string state() const;
  static Rng from_state(std::string_view s, const std::string& where = "rng state");

 private:
  Rng() = default;
  uint64_t s_[4] = {};
};

// ---------------------------------------------------------------------------------------------
// CSV reading (libcsv). Streams records; fields are kept byte-exact (no trimming of spaces, a
// quoted field's CR/LF kept as written). A BOM at the very start is dropped.
class CsvReader {
 public:
  // Throws lmforge::Error naming the file when it is missing or unreadable.
  explicit CsvReader(const std::filesystem::path& file);
  ~CsvReader();
  CsvReader(const CsvReader&) = delete;
  CsvReader& operator=(const CsvReader&) = delete;

  // The next record, or false at end of file. Throws lmforge::Error naming the file on an
  // unterminated quoted field at end of file or a read error.
  bool next(std::vector<std::string>& fields);
  // 1-based line on which the last returned record started.
  int64_t line() const { return record_line_; }
  const std::filesystem::path& file() const { return file_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::filesystem::path file_;
  int64_t record_line_ = 0;
};

// "'a', 'b', 'c'" for messages naming a file's columns (names made printable, long lists cut).
std::string column_list(const std::vector<std::string>& header);

// True when `s` is well-formed UTF-8 (no overlong forms, surrogates, or code points > U+10FFFF).
bool is_valid_utf8(std::string_view s);

// ---------------------------------------------------------------------------------------------
enum class SampleMode { First, Random };

struct DataOptions {
  std::filesystem::path data_path;
  std::string text_column = "headline_text";
  std::string prefix = "|HEADLINE| ";
  std::string suffix = ".";
  int64_t max_rows = 5000;  // <= 0: every usable row
  SampleMode sample = SampleMode::First;
  double validation_fraction = 0.2;  // [0, 1)
  uint64_t seed = 42;
  int64_t max_tokens = 1024;         // the model's n_positions; <= 0: no truncation
  bool append_eos = true;
  // Completion-only loss (TRL's DataCollatorForCompletionOnlyLM): when not empty, the tokens of
  // prefix + text up to and including the first occurrence of this string get no loss, so the
  // model learns the answer, not the prompt. The row is tokenized whole (as generation sees it);
  // the masked tokens are its leading tokens shared with the tokenization of that prompt part. A
  // row without the string gets no loss at all and is counted (DataSummary::no_response_template).
  std::string response_template;
};

// What happened to the rows. records_read counts data records (header excluded) actually read.
struct DataSummary {
  std::string file, column;
  int64_t records_read = 0;
  int64_t skipped_malformed = 0;     // field count differs from the header's
  int64_t skipped_invalid_utf8 = 0;  // text column not valid UTF-8
  int64_t skipped_empty = 0;         // text column empty (after removing trailing whitespace)
  int64_t usable = 0;                // rows that passed the checks (among those read)
  int64_t selected = 0;              // kept after max_rows / sample
  int64_t truncated = 0;             // examples cut to max_tokens
  int64_t train_examples = 0, validation_examples = 0;
  int64_t train_tokens = 0, validation_tokens = 0;
  int64_t max_example_tokens = 0;
  int64_t no_response_template = 0;  // rows without the response template (no loss on them)

  int64_t skipped() const { return skipped_malformed + skipped_invalid_utf8 + skipped_empty; }
  // One line, e.g. "data.csv: 5000 rows from column 'headline_text' (5003 read; skipped 2 empty,
  // 1 malformed, 0 invalid UTF-8; 0 truncated to 1024 tokens) -> 4000 train / 1000 validation".
  std::string to_string() const;
};

struct Example {
  std::vector<int32_t> ids;
  int64_t line = 0;      // CSV line on which the row started (for messages)
  int32_t n_masked = 0;  // leading tokens without loss (labels -100): the prompt with a response template
};

struct Dataset {
  std::vector<Example> train, validation;
  DataSummary summary;
  int32_t eos_id = 0;
};

// The usable texts of one column, selected as described above (steps 1-3), in file order.
struct TextRows {
  std::vector<std::string> texts;  // right-stripped
  std::vector<int64_t> lines;
  DataSummary summary;             // fields up to `selected` filled in
};
TextRows read_text_rows(const DataOptions& opt);

// Steps 1-6. The eos id is the tokenizer's (throws lmforge::Error if it has none).
Dataset load_dataset(const DataOptions& opt, const Tokenizer& tok);

// Step 6 alone: indices [0, n) split into (train, validation), each sorted ascending.
std::pair<std::vector<int64_t>, std::vector<int64_t>> split_indices(int64_t n, double validation_fraction,
                                                                    uint64_t seed);

// ---------------------------------------------------------------------------------------------
// Batches. Padding mode: each example is one row; a batch is as long as its longest row and the
// others are right-padded with pad_id (attention_mask 0, labels -100). Packing mode: all examples
// (in the order given) are concatenated and cut into rows of exactly block_size tokens; the final
// partial row is kept, right-padded like above (packed batches are always block_size long).
// Packed rows cross example boundaries (the eos between examples separates them), as HF's
// run_clm group_texts does. In both modes labels = input_ids on real tokens (the model shifts)
// and position_ids = 0..T-1 for every row, as HF training does.
struct LoaderOptions {
  int batch_size = 8;
  bool shuffle = true;
  bool packing = false;
  int block_size = 1024;  // packing only
  bool drop_last = false;
  int32_t pad_id = 50256;  // GPT-2 has no pad token: HF fine-tuning pads with eos
  uint64_t seed = 42;
};

// Right-pads `rows` into one batch (T = longest row, or pad_to when larger). `n_masked`, when not
// empty, gives per row how many leading tokens get label -100 (they stay in the input).
TrainBatch collate(const std::vector<std::span<const int32_t>>& rows, int32_t pad_id, int pad_to = 0,
                   std::span<const int32_t> n_masked = {});

// Where a loader is: the next batch to serve is batch `batch` of epoch `epoch`. The epoch order
// is a pure function of (seed, epoch), so this is the whole state needed to resume; rows and
// batch_size are recorded to detect a resume on different data or settings.
struct DataPosition {
  uint64_t seed = 0;
  int64_t epoch = 0;
  int64_t batch = 0;
  int64_t rows = 0;
  int64_t batch_size = 0;
  bool operator==(const DataPosition&) const = default;
};

class DataLoader {
 public:
  // Throws lmforge::Error on a non-positive batch/block size or no rows.
  DataLoader(const std::vector<Example>& examples, const LoaderOptions& opt);

  int64_t num_rows() const { return static_cast<int64_t>(rows_.size()); }  // examples or packed blocks
  int64_t batches_per_epoch() const;
  int64_t num_tokens() const;  // real (non-padding) tokens in all rows (one epoch unless drop_last)

  // The batch at position(), then advances (to batch 0 of the next epoch after the last one).
  TrainBatch next();
  // Any batch, without moving. Throws lmforge::Error when `batch` is out of range.
  TrainBatch batch_at(int64_t epoch, int64_t batch) const;
  // The row order of an epoch (identity without shuffle).
  std::vector<int64_t> epoch_order(int64_t epoch) const;

  const DataPosition& position() const { return pos_; }
  // Resumes at `p`. Throws lmforge::Error (naming what differs) when p was recorded with another
  // seed, number of rows or batch size, or points past the epoch.
  void set_position(const DataPosition& p);

 private:
  std::vector<std::vector<int32_t>> rows_;
  std::vector<int32_t> n_masked_;  // per row (padding mode): leading tokens without loss
  LoaderOptions opt_;
  DataPosition pos_;
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<int64_t> cached_order_;
};

}  // namespace lmforge
