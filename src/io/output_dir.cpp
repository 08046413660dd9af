#include "lmforge/io/output_dir.h"

#include <unistd.h>

#include <fstream>

#include "io/io_util.h"
#include "lmforge/error.h"

namespace lmforge {
namespace fs = std::filesystem;

namespace {
constexpr const char* kVersion = "0.1.0";
}

std::optional<nlohmann::json> read_output_record(const fs::path& dir) {
  const fs::path file = dir / kOutputRecordFile;
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return std::nullopt;
  const std::string text = io::read_text_file(file, "output record");
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) io::fail(file.string(), "not a JSON object (delete it, or give another output folder)");
  return j;
}

std::optional<nlohmann::json> read_training_record(const fs::path& dir) {
  auto rec = read_output_record(dir);
  if (!rec || !rec->contains("training")) return std::nullopt;
  const nlohmann::json& t = (*rec)["training"];
  if (!t.is_object()) io::fail((dir / kOutputRecordFile).string(), "\"training\" is not an object");
  return t;
}

void check_output_dir(const fs::path& dir, const std::string& command, bool overwrite, const std::string& flag) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return;
  if (!fs::is_directory(dir, ec))
    throw Error(flag + ": '" + dir.string() + "' exists and is not a folder");
  if (fs::is_empty(dir, ec) || overwrite) return;
  std::optional<nlohmann::json> rec;
  try {
    rec = read_output_record(dir);
  } catch (const Error&) {
    rec.reset();  // an unreadable record proves nothing: treat the folder as someone else's
  }
  if (rec && rec->value("command", std::string()) == command) return;
  throw Error(flag + ": output folder '" + dir.string() + "' exists and is not empty (and is not an earlier `lmforge " +
              command + "` output); pass --overwrite_output_dir to write into it anyway");
}

void write_output_record(const fs::path& dir, const std::string& command, const nlohmann::json& extra) {
  nlohmann::json j{{"command", command}, {"lmforge_version", kVersion}};
  if (extra.is_object())
    for (auto it = extra.begin(); it != extra.end(); ++it) j[it.key()] = it.value();
  const fs::path file = dir / kOutputRecordFile;
  const fs::path tmp = file.string() + ".tmp." + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << j.dump(2) << "\n";
    out.flush();
    if (!out) {
      std::error_code ec;
      fs::remove(tmp, ec);
      throw Error("cannot write '" + file.string() + "'");
    }
  }
  std::error_code ec;
  fs::rename(tmp, file, ec);
  if (ec) {
    fs::remove(tmp, ec);
    throw Error("cannot write '" + file.string() + "': " + ec.message());
  }
}

}  // namespace lmforge
