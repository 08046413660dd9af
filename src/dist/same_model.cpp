#include "lmforge/dist/same_model.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <vector>

#include "lmforge/dist/bytes.h"
#include "lmforge/error.h"
#include "lmforge/io/hub_cache.h"

namespace lmforge::dist {

namespace {

class Fnv1a {
 public:
  void add(const std::string& bytes) {
    for (unsigned char c : bytes) h_ = (h_ ^ c) * 0x100000001b3ull;
    h_ = (h_ ^ 0xff) * 0x100000001b3ull;  // a separator, so "ab"+"c" differs from "a"+"bc"
  }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 0xcbf29ce484222325ull;
};

std::string read_all(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw Error(p.string() + ": cannot read it");
  return std::string(std::istreambuf_iterator<char>(in), {});
}

bool is_weight_file(const std::filesystem::path& p) { return p.extension() == ".safetensors" || p.extension() == ".bin"; }

}  // namespace

uint64_t model_fingerprint(const std::filesystem::path& folder) {
  namespace fs = std::filesystem;
  Fnv1a h;
  for (const char* name : {"config.json", "adapter_config.json"})
    h.add(fs::exists(folder / name) ? read_all(folder / name) : std::string());
  std::vector<std::pair<std::string, uintmax_t>> weights;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(folder, ec))
    if (e.is_regular_file() && is_weight_file(e.path())) weights.emplace_back(e.path().filename().string(), e.file_size());
  if (ec) throw Error(folder.string() + ": cannot list the folder (" + ec.message() + ")");
  std::sort(weights.begin(), weights.end());
  for (const auto& [name, size] : weights) h.add(name + "\t" + std::to_string(size));
  return h.value();
}

namespace {

// Gathers each rank's (fingerprint, path) and, on rank 0, throws naming `flag` and the first rank
// whose fingerprint differs from rank 0's: "FLAG: rank R's WHAT 'path' is not rank 0's 'path' WHY".
void check_same(const World& w, const std::string& flag, uint64_t fingerprint, const std::string& path,
                const std::string& what, const std::string& why) {
  ByteWriter mine;
  mine.put(fingerprint);
  mine.put(path);
  const std::vector<std::string> all = w.gather(mine.bytes(), flag + " check");
  if (!w.is_root()) return;
  ByteReader root(all[0]);
  const auto expected = root.get<uint64_t>();
  for (size_t r = 1; r < all.size(); ++r) {
    ByteReader in(all[r]);
    if (in.get<uint64_t>() == expected) continue;
    throw Error(flag + ": rank " + std::to_string(r) + "'s " + what + " '" + in.get_string() + "' is not rank 0's '" +
                root.get_string() + "' " + why);
  }
}

}  // namespace

void check_same_model(const World& w, const std::string& flag, const std::string& folder) {
  if (!w.distributed()) return;
  const std::filesystem::path path = resolve_model_path(folder);
  check_same(w, flag, model_fingerprint(path), path.string(), "model folder",
             "(config.json or the weight files' names and sizes differ); every rank must run the same model");
}

uint64_t file_fingerprint(const std::filesystem::path& file) {
  Fnv1a h;
  std::ifstream in(file, std::ios::binary);
  h.add(in ? std::string(std::istreambuf_iterator<char>(in), {}) : std::string("\0missing", 8));
  return h.value();
}

void check_same_file(const World& w, const std::string& flag, const std::string& file) {
  if (!w.distributed()) return;
  check_same(w, flag, file_fingerprint(file), file, "file",
             "(its bytes differ); every rank must train on the same data");
}

}  // namespace lmforge::dist
