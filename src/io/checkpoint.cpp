// Checkpoint folders: picks the weight files HF would use and stitches shards together.
#include "lmforge/io/checkpoint.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

#include <nlohmann/json.hpp>

#include "io/checkpoint_builder.h"
#include "io/io_util.h"

namespace lmforge {

namespace {

using io::fail;
using io::printable;
using nlohmann::json;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Shards must sit next to their index: a name with a path in it ("../x", "/etc/x") is refused
// rather than followed outside the checkpoint folder.
bool is_plain_file_name(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos && s.find('\\') == std::string::npos &&
         s.find('\0') == std::string::npos;
}

// weight_map as shard file -> tensor names, validated.
std::map<std::string, std::vector<std::string>> read_weight_map(const std::filesystem::path& index_json) {
  const std::string where = index_json.string();
  const std::string text = io::read_text_file(index_json, "shard index");
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& ex) {
    fail(where, std::string("not valid JSON: ") + printable(ex.what()));
  }
  if (!j.is_object()) fail(where, "must be a JSON object");
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object()) fail(where, "'weight_map' must be an object of tensor name -> shard file");
  std::map<std::string, std::vector<std::string>> by_shard;
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it.value().is_string()) fail(where, "weight_map entry '" + printable(it.key()) + "' must be a file name string");
    const std::string shard = it.value().get<std::string>();
    if (!is_plain_file_name(shard)) fail(where, "weight_map entry '" + printable(it.key()) + "' names an invalid shard '" + printable(shard) + "'");
    by_shard[shard].push_back(it.key());
  }
  if (by_shard.empty()) fail(where, "'weight_map' is empty");
  return by_shard;
}

}  // namespace

Checkpoint Checkpoint::open_sharded_index(const std::filesystem::path& index_json) {
  const std::string where = index_json.string();
  const auto by_shard = read_weight_map(index_json);
  const auto dir = index_json.parent_path();
  CheckpointBuilder b;
  std::vector<Checkpoint> shards;
  for (const auto& [shard, names] : by_shard) {
    const bool is_safetensors = ends_with(shard, ".safetensors");
    if (!is_safetensors && !ends_with(shard, ".bin"))
      fail(where, "shard '" + printable(shard) + "' is neither .safetensors nor .bin");
    const auto path = dir / shard;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) fail(where, "shard '" + printable(shard) + "' is missing (" + path.string() + ")");
    Checkpoint c = is_safetensors ? open_safetensors(path) : open_torch_bin(path);
    for (const auto& name : names) {
      auto it = c.tensors_.find(name);
      if (it == c.tensors_.end())
        fail(where, "tensor '" + printable(name) + "' is listed in shard '" + printable(shard) + "' but absent from it");
      b.add(where, name, it->second);
    }
    b.own_all(c);
    shards.push_back(std::move(c));
  }
  // HF loads every tensor of every shard; the index decides only where a listed name comes from.
  for (const auto& c : shards)
    for (const auto& [name, view] : c.tensors_)
      if (!b.ck.has(name)) b.add(where, name, view);
  b.describe(std::to_string(by_shard.size()) + " shard" + (by_shard.size() == 1 ? "" : "s") + " of " + io::short_name(index_json));
  return b.take();
}

Checkpoint Checkpoint::open(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) fail(dir.string(), "checkpoint folder not found");
  if (!std::filesystem::is_directory(dir, ec)) fail(dir.string(), "not a folder (expected an HF checkpoint folder)");
  // HF's order of preference: safetensors over pickles, single file over shards.
  static const char* kCandidates[] = {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                                      "pytorch_model.bin.index.json"};
  for (const char* name : kCandidates) {
    const auto path = dir / name;
    if (!std::filesystem::exists(path, ec)) continue;
    const std::string n = name;
    if (n == "model.safetensors") return open_safetensors(path);
    if (n == "pytorch_model.bin") return open_torch_bin(path);
    return open_sharded_index(path);
  }
  fail(dir.string(),
       "no weights found (looked for model.safetensors, model.safetensors.index.json, pytorch_model.bin, "
       "pytorch_model.bin.index.json)");
}

const TensorView& Checkpoint::get(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error("tensor '" + printable(name) + "' not found in " + description_);
  return it->second;
}

void Checkpoint::release(const TensorView& t) const {
  static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(t.data), end = begin + t.nbytes;
  for (const Range& r : mapped_) {
    const auto map_begin = reinterpret_cast<uintptr_t>(r.begin);
    if (begin < map_begin || end > map_begin + r.size) continue;
    // Only whole pages inside the tensor: a neighbour sharing a page may still be needed.
    const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
    if (first < last) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
    return;
  }
}

}  // namespace lmforge
