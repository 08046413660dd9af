// CSV -> usable text rows -> tokenized examples -> seeded train/validation split.
#include "lmforge/train/data.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <sstream>

#include "io/io_util.h"
#include "lmforge/tokenizer/tokenizer.h"

namespace lmforge {

namespace {

// Stream ids that keep the seeded RNGs of the pipeline independent of each other.
constexpr uint64_t kSampleStream = 1;
constexpr uint64_t kSplitStream = 2;

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

bool is_ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

std::string rstrip(std::string s) {
  while (!s.empty() && is_ascii_space(s.back())) s.pop_back();
  return s;
}

std::string strip(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && is_ascii_space(s[b])) ++b;
  while (e > b && is_ascii_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

}  // namespace

std::string column_list(const std::vector<std::string>& header) {
  std::string out;
  for (size_t i = 0; i < header.size(); ++i) {
    if (i) out += ", ";
    out += '\'';  // appended piecewise: GCC 12's -Wrestrict misfires on "'" + a string temporary
    out += io::printable(header[i], 60);
    out += '\'';
    if (out.size() > 400) {
      out += ", ... (" + std::to_string(header.size()) + " columns)";
      break;
    }
  }
  return out;
}

// ---- Rng -------------------------------------------------------------------------------------

Rng::Rng(uint64_t seed, uint64_t stream) {
  uint64_t x = seed;
  uint64_t mixed = splitmix64(x) ^ stream;  // seed and stream both pass through splitmix below
  for (auto& s : s_) s = splitmix64(mixed);
}

uint64_t Rng::next() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

uint64_t Rng::below(uint64_t n) {
  if (n == 0) throw Error("Rng::below(0)");
  const uint64_t threshold = (0 - n) % n;  // 2^64 mod n: values below it would bias the modulo
  for (;;) {
    const uint64_t r = next();
    if (r >= threshold) return r % n;
  }
}

double Rng::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

std::string Rng::state() const {
  char buf[100];
  std::snprintf(buf, sizeof buf, "xoshiro256**:%016llx:%016llx:%016llx:%016llx", static_cast<unsigned long long>(s_[0]),
                static_cast<unsigned long long>(s_[1]), static_cast<unsigned long long>(s_[2]),
                static_cast<unsigned long long>(s_[3]));
  return buf;
}

Rng Rng::from_state(std::string_view s, const std::string& where) {
  const std::string_view tag = "xoshiro256**";
  Rng r;
  auto bad = [&]() { io::fail(where, "malformed RNG state '" + io::printable(s, 120) + "'"); };
  if (s.substr(0, tag.size()) != tag) bad();
  size_t pos = tag.size();
  for (auto& word : r.s_) {
    if (pos >= s.size() || s[pos] != ':' || pos + 17 > s.size()) bad();
    uint64_t v = 0;
    for (size_t i = pos + 1; i < pos + 17; ++i) {
      const char c = s[i];
      int d;
      if (c >= '0' && c <= '9') d = c - '0';
      else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      else { bad(); d = 0; }
      v = (v << 4) | static_cast<uint64_t>(d);
    }
    word = v;
    pos += 17;
  }
  if (pos != s.size()) bad();
  if ((r.s_[0] | r.s_[1] | r.s_[2] | r.s_[3]) == 0) bad();  // xoshiro's one forbidden state
  return r;
}

// ---- DataSummary -----------------------------------------------------------------------------

std::string DataSummary::to_string() const {
  std::ostringstream o;
  o << file << ": " << selected << " rows from column '" << column << "' (" << records_read << " read; skipped "
    << skipped_empty << " empty, " << skipped_malformed << " malformed, " << skipped_invalid_utf8
    << " invalid UTF-8; " << truncated << " truncated) -> " << train_examples << " train / " << validation_examples
    << " validation examples, " << train_tokens << " / " << validation_tokens << " tokens";
  if (no_response_template > 0)
    o << "; " << no_response_template << " rows without the response template (no loss on them)";
  return o.str();
}

// ---- rows ------------------------------------------------------------------------------------

TextRows read_text_rows(const DataOptions& opt) {
  const std::string where = opt.data_path.string();
  CsvReader reader(opt.data_path);
  std::vector<std::string> header;
  if (!reader.next(header)) io::fail(where, "empty CSV file (no header row)");

  // The column by exact name; failing that, by name with surrounding spaces removed
  // ("publish_date, headline_text" headers).
  auto col_it = std::find(header.begin(), header.end(), opt.text_column);
  if (col_it == header.end())
    col_it = std::find_if(header.begin(), header.end(), [&](const std::string& h) { return strip(h) == opt.text_column; });
  if (col_it == header.end())
    io::fail(where, "no column '" + io::printable(opt.text_column) + "' (columns: " + column_list(header) + ")");
  const size_t col = static_cast<size_t>(col_it - header.begin());

  TextRows out;
  DataSummary& s = out.summary;
  s.file = where;
  s.column = opt.text_column;
  const bool random = opt.sample == SampleMode::Random;
  const bool limited = opt.max_rows > 0;
  Rng rng(opt.seed, kSampleStream);

  std::vector<std::string> fields;
  while (reader.next(fields)) {
    ++s.records_read;
    if (fields.size() != header.size()) {
      ++s.skipped_malformed;
      continue;
    }
    std::string& text = fields[col];
    if (!is_valid_utf8(text)) {
      ++s.skipped_invalid_utf8;
      continue;
    }
    text = rstrip(std::move(text));
    if (text.empty()) {
      ++s.skipped_empty;
      continue;
    }
    const int64_t k = s.usable++;  // index of this row among the usable ones
    if (!random || !limited || k < opt.max_rows) {
      out.texts.push_back(std::move(text));
      out.lines.push_back(reader.line());
      if (!random && limited && k + 1 == opt.max_rows) break;  // `first`: nothing more to read
    } else {
      // Reservoir sampling (algorithm R): row k replaces a kept one with probability max_rows/(k+1).
      const uint64_t j = rng.below(static_cast<uint64_t>(k) + 1);
      if (j < static_cast<uint64_t>(opt.max_rows)) {
        out.texts[j] = std::move(text);
        out.lines[j] = reader.line();
      }
    }
  }
  if (s.usable == 0)
    io::fail(where, "no usable rows in column '" + io::printable(opt.text_column) + "' (" +
                        std::to_string(s.records_read) + " records: " + std::to_string(s.skipped_empty) + " empty, " +
                        std::to_string(s.skipped_malformed) + " malformed, " +
                        std::to_string(s.skipped_invalid_utf8) + " invalid UTF-8)");
  if (random) {  // back to file order
    std::vector<size_t> idx(out.texts.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return out.lines[a] < out.lines[b]; });
    TextRows sorted;
    sorted.summary = out.summary;
    for (size_t i : idx) {
      sorted.texts.push_back(std::move(out.texts[i]));
      sorted.lines.push_back(out.lines[i]);
    }
    out = std::move(sorted);
  }
  s.selected = static_cast<int64_t>(out.texts.size());
  out.summary.selected = s.selected;
  return out;
}

// ---- split -----------------------------------------------------------------------------------

std::pair<std::vector<int64_t>, std::vector<int64_t>> split_indices(int64_t n, double validation_fraction,
                                                                    uint64_t seed) {
  if (!(validation_fraction >= 0.0 && validation_fraction < 1.0))
    throw Error("validation_fraction must be in [0, 1), got " + std::to_string(validation_fraction));
  // HF train_test_split: n_test = ceil(test_size * n). The epsilon keeps 0.1 * 30 = 3.0000000000000004 at 3.
  int64_t n_val = 0;
  if (validation_fraction > 0.0)
    n_val = static_cast<int64_t>(std::ceil(validation_fraction * static_cast<double>(n) - 1e-9));
  n_val = std::clamp<int64_t>(n_val, 0, n);
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), 0);
  Rng rng(seed, kSplitStream);
  rng.shuffle(perm);
  std::vector<int64_t> val(perm.begin(), perm.begin() + n_val), train(perm.begin() + n_val, perm.end());
  std::sort(val.begin(), val.end());
  std::sort(train.begin(), train.end());
  return {std::move(train), std::move(val)};
}

// ---- dataset ---------------------------------------------------------------------------------

namespace {
// How many leading tokens of `ids` (the tokenization of `text`) belong to the prompt: the text up to
// and including the first `response_template`. BPE may merge across that boundary, so the prompt
// part is tokenized alone and only the tokens both tokenizations share are masked (a token that
// straddles the boundary keeps its loss). -1 when the template does not occur.
int32_t prompt_tokens(const Tokenizer& tok, const std::string& text, const std::vector<int32_t>& ids,
                      const std::string& response_template) {
  const size_t at = text.find(response_template);
  if (at == std::string::npos) return -1;
  const std::vector<int32_t> prompt = tok.encode(std::string_view(text).substr(0, at + response_template.size()));
  size_t n = 0;
  while (n < prompt.size() && n < ids.size() && prompt[n] == ids[n]) ++n;
  return static_cast<int32_t>(n);
}
}  // namespace

Dataset load_dataset(const DataOptions& opt, const Tokenizer& tok) {
  const std::string where = opt.data_path.string();
  if (!(opt.validation_fraction >= 0.0 && opt.validation_fraction < 1.0))
    io::fail(where, "validation_fraction must be in [0, 1), got " + std::to_string(opt.validation_fraction));
  if (!is_valid_utf8(opt.prefix)) throw Error("prefix is not valid UTF-8");
  if (!is_valid_utf8(opt.suffix)) throw Error("suffix is not valid UTF-8");
  if (!is_valid_utf8(opt.response_template)) throw Error("response_template is not valid UTF-8");
  const auto eos = tok.eos_id();
  if (opt.append_eos && !eos) throw Error("the tokenizer has no eos token (needed to end each example)");

  TextRows rows = read_text_rows(opt);
  Dataset ds;
  ds.summary = rows.summary;
  ds.eos_id = eos.value_or(0);
  DataSummary& s = ds.summary;

  const int64_t n = static_cast<int64_t>(rows.texts.size());
  std::vector<Example> examples(static_cast<size_t>(n));
  std::string first_error;
#pragma omp parallel for schedule(dynamic, 64)
  for (int64_t i = 0; i < n; ++i) {
    try {
      auto& ex = examples[static_cast<size_t>(i)];
      const std::string text = opt.prefix + rows.texts[static_cast<size_t>(i)] + opt.suffix;
      ex.ids = tok.encode(text);
      if (!opt.response_template.empty()) ex.n_masked = prompt_tokens(tok, text, ex.ids, opt.response_template);
      if (opt.append_eos) ex.ids.push_back(*eos);
      ex.line = rows.lines[static_cast<size_t>(i)];
    } catch (const std::exception& e) {
#pragma omp critical(lmforge_data_error)
      if (first_error.empty()) first_error = e.what();
    }
  }
  if (!first_error.empty()) io::fail(where, "tokenizing: " + first_error);
  for (auto& ex : examples) {
    if (opt.max_tokens > 0 && static_cast<int64_t>(ex.ids.size()) > opt.max_tokens) {
      ex.ids.resize(static_cast<size_t>(opt.max_tokens));
      ++s.truncated;
    }
    s.no_response_template += ex.n_masked < 0;
    if (ex.n_masked < 0 || ex.n_masked > static_cast<int64_t>(ex.ids.size())) ex.n_masked = static_cast<int32_t>(ex.ids.size());
    s.max_example_tokens = std::max<int64_t>(s.max_example_tokens, static_cast<int64_t>(ex.ids.size()));
  }

  if (!opt.response_template.empty() && s.no_response_template == n)
    io::fail(where, "response_template '" + io::printable(opt.response_template, 60) + "' occurs in none of the " +
                        std::to_string(n) + " rows of column '" + opt.text_column + "' (with prefix and suffix)");
  auto [train_idx, val_idx] = split_indices(n, opt.validation_fraction, opt.seed);
  if (train_idx.empty())
    io::fail(where, "validation_fraction " + std::to_string(opt.validation_fraction) + " of " + std::to_string(n) +
                        " rows leaves no training rows");
  for (int64_t i : train_idx) {
    s.train_tokens += static_cast<int64_t>(examples[static_cast<size_t>(i)].ids.size());
    ds.train.push_back(std::move(examples[static_cast<size_t>(i)]));
  }
  for (int64_t i : val_idx) {
    s.validation_tokens += static_cast<int64_t>(examples[static_cast<size_t>(i)].ids.size());
    ds.validation.push_back(std::move(examples[static_cast<size_t>(i)]));
  }
  s.train_examples = static_cast<int64_t>(ds.train.size());
  s.validation_examples = static_cast<int64_t>(ds.validation.size());
  return ds;
}

}  // namespace lmforge
