// finetune's training record as the defaults of synth, eval perplexity, quantize and tune
// (see include/lmforge/eval/training_record.h).
#include "lmforge/eval/training_record.h"

#include <cstdio>

#include "lmforge/error.h"
#include "lmforge/io/output_dir.h"

namespace lmforge::eval {
namespace {

// Checks one member's type; a missing or null member stays nullopt.
class BlockReader {
 public:
  BlockReader(const nlohmann::json& block, std::string file) : block_(block), file_(std::move(file)) {}

  const nlohmann::json* find(const char* key) const {
    const auto it = block_.find(key);
    return it == block_.end() || it->is_null() ? nullptr : &*it;
  }
  [[noreturn]] void fail(const char* key, const std::string& what) const {
    throw Error(file_ + ": training." + key + " " + what + " (fix or delete the file)");
  }
  std::optional<std::string> text(const char* key) const {
    const nlohmann::json* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) fail(key, "must be a string, got " + v->dump());
    return v->get<std::string>();
  }
  std::optional<int64_t> integer(const char* key) const {
    const nlohmann::json* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_number_integer()) fail(key, "must be an integer, got " + v->dump());
    return v->get<int64_t>();
  }
  std::optional<double> number(const char* key) const {
    const nlohmann::json* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_number()) fail(key, "must be a number, got " + v->dump());
    return v->get<double>();
  }

 private:
  const nlohmann::json& block_;
  std::string file_;
};

}  // namespace

std::optional<TrainingRecord> load_training_record(const std::filesystem::path& model_dir) {
  const std::optional<nlohmann::json> block = read_training_record(model_dir);
  if (!block) return std::nullopt;
  TrainingRecord r;
  r.file = model_dir / kOutputRecordFile;
  r.block = *block;
  const BlockReader read(*block, r.file.string());
  r.prefix = read.text("prefix");
  r.suffix = read.text("suffix");
  r.text_column = read.text("text_column");
  r.data_path = read.text("data_path");
  r.sample = read.text("sample");
  if (r.sample && *r.sample != "first" && *r.sample != "random")
    read.fail("sample", "must be \"first\" or \"random\", got \"" + *r.sample + "\"");
  r.max_rows = read.integer("max_rows");
  r.validation_fraction = read.number("validation_fraction");
  if (r.validation_fraction && !(*r.validation_fraction >= 0.0 && *r.validation_fraction < 1.0))
    read.fail("validation_fraction", "must be in [0, 1), got " + std::to_string(*r.validation_fraction));
  if (const auto seed = read.integer("seed")) {
    if (*seed < 0) read.fail("seed", "must be a non-negative integer, got " + std::to_string(*seed));
    r.seed = static_cast<uint64_t>(*seed);
  }
  return r;
}

std::string quote_text(std::string_view s) {
  std::string out = "'";
  for (const char c : s) {
    if (c == '\\' || c == '\'') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
      out += buf;
    } else {
      out += c;  // UTF-8 bytes stay as they are
    }
  }
  return out + "'";
}

std::string record_used_line(const TrainingRecord& record, const std::vector<std::pair<std::string, std::string>>& taken) {
  if (taken.empty()) return "";
  std::string list;
  for (size_t i = 0; i < taken.size(); ++i) {
    if (i > 0) list += i + 1 == taken.size() ? " and " : ", ";
    list += taken[i].first + " " + taken[i].second;
  }
  return "lmforge: using finetune's " + list + " from " + record.file.string();
}

}  // namespace lmforge::eval
