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

void check_same_model(const World& w, const std::string& flag, const std::string& folder) {
  if (!w.distributed()) return;
  const std::filesystem::path path = resolve_model_path(folder);
  ByteWriter mine;
  mine.put(model_fingerprint(path));
  mine.put(path.string());
  const std::vector<std::string> all = w.gather(mine.bytes(), flag + " check");
  if (!w.is_root()) return;
  ByteReader root(all[0]);
  const auto expected = root.get<uint64_t>();
  for (size_t r = 1; r < all.size(); ++r) {
    ByteReader in(all[r]);
    if (in.get<uint64_t>() == expected) continue;
    throw Error(flag + ": rank " + std::to_string(r) + "'s model folder '" + in.get_string() + "' is not rank 0's '" +
                root.get_string() + "' (config.json or the weight files' names and sizes differ); every rank must "
                "run the same model");
  }
}

}  // namespace lmforge::dist
