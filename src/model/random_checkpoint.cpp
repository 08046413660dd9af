// Streaming writer of random-weight HF checkpoint folders (see the header for the format).
#include "lmforge/model/random_checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <future>
#include <regex>

#include <nlohmann/json.hpp>

#include "lmforge/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/kernels/kernels.h"
#include "lmforge/model/model.h"
#include "lmforge/model/save.h"

namespace lmforge {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// ---- the tensors of a model, in HF named_parameters() order, with their initialisation -------

enum class Init { Normal, One, Zero };

struct Planned {
  std::string name;
  std::vector<int64_t> shape;  // as HF stores it (Conv1D [in, out], nn.Linear [out, in])
  Init init;
  float std = 0.0f;  // Init::Normal
  int64_t numel() const {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
  }
};

std::vector<Planned> plan_gpt2(const ModelConfig& c) {
  const int64_t E = c.n_embd, I = c.inner_dim(), V = c.vocab_size, P = c.n_positions;
  const float s = 0.02f, residual = 0.02f / std::sqrt(2.0f * c.n_layer);
  std::vector<Planned> p = {{"transformer.wte.weight", {V, E}, Init::Normal, s},
                            {"transformer.wpe.weight", {P, E}, Init::Normal, s}};
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string h = "transformer.h." + std::to_string(l) + ".";
    p.push_back({h + "ln_1.weight", {E}, Init::One});
    p.push_back({h + "ln_1.bias", {E}, Init::Zero});
    p.push_back({h + "attn.c_attn.weight", {E, 3 * E}, Init::Normal, s});
    p.push_back({h + "attn.c_attn.bias", {3 * E}, Init::Zero});
    p.push_back({h + "attn.c_proj.weight", {E, E}, Init::Normal, residual});
    p.push_back({h + "attn.c_proj.bias", {E}, Init::Zero});
    p.push_back({h + "ln_2.weight", {E}, Init::One});
    p.push_back({h + "ln_2.bias", {E}, Init::Zero});
    p.push_back({h + "mlp.c_fc.weight", {E, I}, Init::Normal, s});
    p.push_back({h + "mlp.c_fc.bias", {I}, Init::Zero});
    p.push_back({h + "mlp.c_proj.weight", {I, E}, Init::Normal, residual});
    p.push_back({h + "mlp.c_proj.bias", {E}, Init::Zero});
  }
  p.push_back({"transformer.ln_f.weight", {E}, Init::One});
  p.push_back({"transformer.ln_f.bias", {E}, Init::Zero});
  if (!c.tie_word_embeddings) p.push_back({"lm_head.weight", {V, E}, Init::Normal, s});  // tied: left out, as HF
  return p;
}

std::vector<Planned> plan_gptj(const ModelConfig& c) {
  const int64_t E = c.n_embd, I = c.inner_dim(), V = c.vocab_size;
  const float s = 0.02f;
  std::vector<Planned> p = {{"transformer.wte.weight", {V, E}, Init::Normal, s}};
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string h = "transformer.h." + std::to_string(l) + ".";
    p.push_back({h + "ln_1.weight", {E}, Init::One});
    p.push_back({h + "ln_1.bias", {E}, Init::Zero});
    p.push_back({h + "attn.k_proj.weight", {E, E}, Init::Normal, s});
    p.push_back({h + "attn.v_proj.weight", {E, E}, Init::Normal, s});
    p.push_back({h + "attn.q_proj.weight", {E, E}, Init::Normal, s});
    p.push_back({h + "attn.out_proj.weight", {E, E}, Init::Normal, s});
    p.push_back({h + "mlp.fc_in.weight", {I, E}, Init::Normal, s});
    p.push_back({h + "mlp.fc_in.bias", {I}, Init::Zero});
    p.push_back({h + "mlp.fc_out.weight", {E, I}, Init::Normal, s});
    p.push_back({h + "mlp.fc_out.bias", {E}, Init::Zero});
  }
  p.push_back({"transformer.ln_f.weight", {E}, Init::One});
  p.push_back({"transformer.ln_f.bias", {E}, Init::Zero});
  if (c.tie_word_embeddings) return p;
  p.push_back({"lm_head.weight", {V, E}, Init::Normal, s});
  p.push_back({"lm_head.bias", {V}, Init::Zero});
  return p;
}

std::vector<Planned> plan(const ModelConfig& c) { return c.arch == Arch::GPTJ ? plan_gptj(c) : plan_gpt2(c); }

// ---- values: counter-based, so any element can be produced independently (threads, verify) ---

inline uint64_t mix64(uint64_t z) {  // splitmix64's finaliser
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t tensor_key(uint64_t seed, const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a of the name
  for (unsigned char ch : name) h = (h ^ ch) * 0x100000001b3ull;
  return mix64(seed * 0x9e3779b97f4a7c15ull ^ h);
}

// Irwin-Hall with four 16-bit uniforms from one 64-bit draw: mean 0, variance 1 (to 1e-9).
inline float approx_normal(uint64_t key, uint64_t i) {
  const uint64_t r = mix64(key + (i + 1) * 0x9e3779b97f4a7c15ull);
  const int64_t s = static_cast<int64_t>(r & 0xffff) + static_cast<int64_t>((r >> 16) & 0xffff) +
                    static_cast<int64_t>((r >> 32) & 0xffff) + static_cast<int64_t>(r >> 48);
  return static_cast<float>(s - 131070) * (1.0f / 37837.23f);  // sd of the sum = sqrt(4 (2^32 - 1) / 12)
}

// Elements [i0, i1) of tensor p in `dtype` into out.
void fill_values(const Planned& p, uint64_t key, DType dtype, int64_t i0, int64_t i1, void* out) {
  auto value = [&](int64_t i) {
    switch (p.init) {
      case Init::One: return 1.0f;
      case Init::Zero: return 0.0f;
      case Init::Normal: break;
    }
    return approx_normal(key, static_cast<uint64_t>(i)) * p.std;
  };
  const int64_t n = i1 - i0;
  if (dtype == DType::F32) {
    float* o = static_cast<float*>(out);
    for (int64_t k = 0; k < n; ++k) o[k] = value(i0 + k);
  } else {
    uint16_t* o = static_cast<uint16_t*>(out);
    const bool bf16 = dtype == DType::BF16;
    for (int64_t k = 0; k < n; ++k) o[k] = bf16 ? float_to_bf16(value(i0 + k)) : float_to_fp16(value(i0 + k));
  }
}

// ---- shards --------------------------------------------------------------------------------

struct Shard {
  std::string file;
  std::vector<const Planned*> tensors;  // HF order
  uint64_t bytes = 0;
};

// huggingface_hub's split_state_dict_into_shards: in order; a tensor over the limit gets its own
// shard; otherwise a new shard starts when the next tensor would tip the current one over.
std::vector<Shard> plan_shards(const std::vector<Planned>& tensors, size_t elem, uint64_t max_bytes) {
  std::vector<Shard> shards;
  Shard cur;
  for (const Planned& p : tensors) {
    const uint64_t b = static_cast<uint64_t>(p.numel()) * elem;
    if (b > max_bytes) {
      shards.push_back({"", {&p}, b});
      continue;
    }
    if (cur.bytes + b > max_bytes && !cur.tensors.empty()) {
      shards.push_back(std::move(cur));
      cur = {};
    }
    cur.tensors.push_back(&p);
    cur.bytes += b;
  }
  if (!cur.tensors.empty()) shards.push_back(std::move(cur));
  char buf[64];
  for (size_t i = 0; i < shards.size(); ++i) {
    if (shards.size() == 1) {
      shards[i].file = "model.safetensors";
    } else {
      std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
      shards[i].file = buf;
    }
  }
  return shards;
}

void write_all(int fd, const void* data, size_t n, const std::string& file) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, std::min<size_t>(n, 1u << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error("cannot write '" + file + "': " + std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// The safetensors header of a shard: tensors in name order (as the safetensors library lays out
// tensors of one dtype), offsets computed from the shapes, padded to 8 bytes.
std::string shard_header(const std::vector<const Planned*>& by_name, DType dtype, uint64_t* data_bytes) {
  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t off = 0;
  for (const Planned* p : by_name) {
    const uint64_t b = static_cast<uint64_t>(p->numel()) * dtype_size(dtype);
    header[p->name] = {{"dtype", dtype_name(dtype)}, {"shape", p->shape}, {"data_offsets", {off, off + b}}};
    off += b;
  }
  *data_bytes = off;
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(static_cast<uint64_t>(h.size()) >> (8 * i));
  return out + h;
}

// Writes one shard file: the header, then every tensor's values, generated in chunks on the
// kernel threads while the previous chunk is being written (and, with drop_cache, its pages
// flushed and dropped from the page cache once on disk).
class ShardWriter {
 public:
  ShardWriter(const fs::path& file, DType dtype, uint64_t seed, bool drop_cache, size_t chunk_elems)
      : file_(file.string()), dtype_(dtype), seed_(seed), drop_cache_(drop_cache), chunk_elems_(chunk_elems) {
    fd_ = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error("cannot create '" + file_ + "': " + std::strerror(errno));
    for (auto& b : buf_) b.resize(chunk_elems_ * dtype_size(dtype_));
  }
  ~ShardWriter() {
    if (pending_.valid()) pending_.wait();
    if (fd_ >= 0) ::close(fd_);
  }

  void write(const Shard& shard, double* generate_s) {
    std::vector<const Planned*> by_name = shard.tensors;
    std::sort(by_name.begin(), by_name.end(), [](const Planned* a, const Planned* b) { return a->name < b->name; });
    uint64_t data_bytes = 0;
    const std::string header = shard_header(by_name, dtype_, &data_bytes);
    write_all(fd_, header.data(), header.size(), file_);
    pos_ = static_cast<off_t>(header.size());
    for (const Planned* p : by_name) write_tensor(*p, generate_s);
    if (pending_.valid()) pending_.get();
    if (::fdatasync(fd_) != 0) throw Error("cannot flush '" + file_ + "': " + std::strerror(errno));
    flush_behind(pos_);
    if (static_cast<uint64_t>(pos_) != header.size() + data_bytes) throw Error("internal: shard size mismatch in " + file_);
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw Error("cannot close '" + file_ + "': " + std::strerror(errno));
  }

 private:
  void write_tensor(const Planned& p, double* generate_s) {
    const uint64_t key = tensor_key(seed_, p.name);
    const size_t elem = dtype_size(dtype_);
    const int64_t n = p.numel();
    for (int64_t i0 = 0; i0 < n; i0 += static_cast<int64_t>(chunk_elems_)) {
      const int64_t i1 = std::min<int64_t>(n, i0 + static_cast<int64_t>(chunk_elems_));
      char* out = buf_[which_].data();
      const auto t0 = Clock::now();
      constexpr int64_t per = 1 << 16;  // elements per task
      kernels::parallel_for(static_cast<int>((i1 - i0 + per - 1) / per), [&](int t) {
        const int64_t a = i0 + t * per, b = std::min(i1, a + per);
        fill_values(p, key, dtype_, a, b, out + (a - i0) * elem);
      });
      *generate_s += seconds_since(t0);
      if (pending_.valid()) pending_.get();  // the other buffer is free again
      const size_t nbytes = static_cast<size_t>(i1 - i0) * elem;
      const off_t at = pos_;
      pending_ = std::async(std::launch::async, [this, out, nbytes, at] {
        write_all(fd_, out, nbytes, file_);
        if (!drop_cache_) return;
        ::sync_file_range(fd_, at, static_cast<off_t>(nbytes), SYNC_FILE_RANGE_WRITE);  // start writeback
        flush_behind(at);  // the chunk before this one
      });
      pos_ += static_cast<off_t>(nbytes);
      which_ ^= 1;
    }
  }

  // Waits for the writeback of [flushed_, upto), then drops those pages from the page cache.
  void flush_behind(off_t upto) {
    if (!drop_cache_ || upto <= flushed_) return;
    ::sync_file_range(fd_, flushed_, upto - flushed_,
                      SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
    ::posix_fadvise(fd_, flushed_, upto - flushed_, POSIX_FADV_DONTNEED);
    flushed_ = upto;
  }

  std::string file_;
  DType dtype_;
  uint64_t seed_;
  bool drop_cache_;
  size_t chunk_elems_;
  int fd_ = -1;
  std::vector<char> buf_[2];  // one filled by the threads while the other is written
  int which_ = 0;
  std::future<void> pending_;
  off_t pos_ = 0, flushed_ = 0;
};

// ---- config files --------------------------------------------------------------------------

const char* torch_dtype_name(DType d) { return d == DType::BF16 ? "bfloat16" : d == DType::F16 ? "float16" : "float32"; }

// config.json as HF writes it for the architecture (EleutherAI/gpt-j-6b's and openai-community/gpt2's
// extra keys included), with torch_dtype = the stored dtype.
std::string config_json(const ModelConfig& c, DType dtype) {
  nlohmann::json j = nlohmann::json::parse(model_config_json(c));
  j["torch_dtype"] = torch_dtype_name(dtype);
  char eps[32];  // 1e-05 as HF writes it, not the float's 9.999999747378752e-06
  std::snprintf(eps, sizeof eps, "%.7g", static_cast<double>(c.layer_norm_epsilon));
  j["layer_norm_epsilon"] = std::strtod(eps, nullptr);
  j["transformers_version"] = "4.38.2";
  if (c.arch == Arch::GPTJ) {
    j["attn_pdrop"] = 0.0;
    j["embd_pdrop"] = 0.0;
    j["resid_pdrop"] = 0.0;
    j["rotary"] = true;
    j["gradient_checkpointing"] = false;
    j["scale_attn_weights"] = true;
    j["tokenizer_class"] = "GPT2Tokenizer";
    j["task_specific_params"] = {{"text-generation", {{"do_sample", true}, {"max_length", 50}, {"temperature", 1.0}}}};
  } else {
    j["attn_pdrop"] = 0.1;
    j["embd_pdrop"] = 0.1;
    j["resid_pdrop"] = 0.1;
    j["n_ctx"] = c.n_positions;
    j["task_specific_params"] = {{"text-generation", {{"do_sample", true}, {"max_length", 50}}}};
  }
  j["summary_activation"] = nullptr;
  j["summary_first_dropout"] = 0.1;
  j["summary_proj_to_labels"] = true;
  j["summary_type"] = "cls_index";
  j["summary_use_proj"] = true;
  return j.dump(2) + "\n";
}

std::string generation_config_json(const ModelConfig& c) {
  nlohmann::json gen{{"_from_model_config", true}, {"transformers_version", "4.38.2"}};
  if (c.bos_token_id) gen["bos_token_id"] = *c.bos_token_id;
  if (c.eos_token_id) gen["eos_token_id"] = *c.eos_token_id;
  return gen.dump(2) + "\n";
}

// A tokenizer folder must hold what HF's GPT-2 tokenizer reads: vocab.json + merges.txt, or
// tokenizer.json. Checked before anything is written.
void check_tokenizer_folder(const fs::path& dir) {
  std::error_code ec;
  const bool slow = fs::is_regular_file(dir / "vocab.json", ec) && fs::is_regular_file(dir / "merges.txt", ec);
  if (!slow && !fs::is_regular_file(dir / "tokenizer.json", ec))
    throw Error("--tokenizer: '" + dir.string() + "' has no vocab.json + merges.txt and no tokenizer.json");
}

// ---- staging and publishing ----------------------------------------------------------------

fs::path without_trailing_slash(const fs::path& p) {
  fs::path n = p.lexically_normal();
  return n.has_filename() || !n.has_parent_path() ? n : n.parent_path();
}

// Where the folder is assembled: on the same filesystem as `dir`, so publishing is a rename, and
// nowhere the user did not point at: inside `dir` when it exists (a --save_path of /tmp must not
// write into /), else a hidden sibling that becomes `dir`.
fs::path staging_folder(const fs::path& dir) {
  const std::string name = ".lmforge-staging-" + std::to_string(::getpid());
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return dir / name;
  const fs::path parent = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
  return parent / ("." + dir.filename().string() + name);
}

void check_space(const fs::path& staging, uint64_t bytes) {
  std::error_code ec;
  const fs::space_info space = fs::space(staging, ec);
  const uint64_t need = bytes + bytes / 100 + (16u << 20);  // headers, config files, tokenizer
  if (!ec && space.available < need)
    throw Error("'" + staging.parent_path().string() + "' has " + std::to_string(space.available / 1000000) +
                " MB free, the checkpoint needs " + std::to_string(need / 1000000) + " MB");
}

bool is_weight_file(const std::string& f) {
  static const std::regex re(R"(model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?)");
  return std::regex_match(f, re);
}

void rename_or_fail(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec) throw Error("cannot move '" + from.string() + "' to '" + to.string() + "': " + ec.message());
}

// Moves the staged files into `dir` (or the whole folder when `dir` is new): those of `order`
// first (weights, then config), then the rest (files added by before_publish, e.g. the output
// record, which so appears only beside a complete checkpoint); then removes stale weight files.
void publish(const fs::path& staging, const fs::path& dir, std::vector<std::string> order) {
  std::error_code ec;
  if (staging.parent_path() != dir) return rename_or_fail(staging, dir);
  for (const auto& e : fs::directory_iterator(staging)) {
    const std::string f = e.path().filename().string();
    if (std::find(order.begin(), order.end(), f) == order.end()) order.push_back(f);
  }
  for (const auto& f : order) rename_or_fail(staging / f, dir / f);
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string f = e.path().filename().string();
    if (is_weight_file(f) && std::find(order.begin(), order.end(), f) == order.end()) fs::remove(e.path(), ec);
  }
  fs::remove(staging, ec);  // empty now
}

std::vector<std::string> folder_listing(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  return names;
}

// The weight files into `staging`; returns their names (the index last).
std::vector<std::string> write_weights(const fs::path& staging, const ModelConfig& c, const RandomCheckpointOptions& o,
                                       RandomCheckpointSummary& sum) {
  const std::vector<Planned> tensors = plan(c);
  const size_t elem = dtype_size(o.dtype);
  int64_t largest = 0;
  for (const Planned& p : tensors) {
    sum.parameters += p.numel();
    largest = std::max(largest, p.numel());
  }
  sum.tensor_bytes = static_cast<uint64_t>(sum.parameters) * elem;
  check_space(staging, sum.tensor_bytes);
  const size_t chunk_elems = std::min<size_t>((64u << 20) / elem, static_cast<size_t>(largest));
  const std::vector<Shard> shards = plan_shards(tensors, elem, o.max_shard_bytes);
  nlohmann::json weight_map = nlohmann::json::object();
  for (const Shard& s : shards) {
    const auto t0 = Clock::now();
    ShardWriter(staging / s.file, o.dtype, o.seed, o.drop_page_cache, chunk_elems).write(s, &sum.generate_seconds);
    for (const Planned* p : s.tensors) weight_map[p->name] = s.file;
    sum.weight_files.push_back(s.file);
    if (o.progress) {
      char line[160];
      std::snprintf(line, sizeof line, "%s  %zu tensors  %.2f GB  %.1f s", s.file.c_str(), s.tensors.size(), s.bytes / 1e9,
                    seconds_since(t0));
      o.progress(line);
    }
  }
  std::vector<std::string> files = sum.weight_files;
  if (shards.size() > 1) {
    const nlohmann::json index{{"metadata", {{"total_size", sum.tensor_bytes}}}, {"weight_map", weight_map}};
    write_text_atomic(staging / "model.safetensors.index.json", index.dump(2) + "\n");
    files.push_back("model.safetensors.index.json");
  }
  return files;
}

// ---- verify ----------------------------------------------------------------------------------

float stored_to_float(const std::byte* p, DType dt) {
  if (dt == DType::F32) {
    float f;
    std::memcpy(&f, p, 4);
    return f;
  }
  uint16_t u;
  std::memcpy(&u, p, 2);
  return dt == DType::BF16 ? bf16_to_float(u) : fp16_to_float(u);
}

void check_config_reads_back(const fs::path& dir, const ModelConfig& c) {
  const ModelConfig back = load_model_config(dir / "config.json");
  if (back.arch != c.arch || back.n_layer != c.n_layer || back.n_embd != c.n_embd || back.n_head != c.n_head ||
      back.vocab_size != c.vocab_size || back.n_positions != c.n_positions || back.inner_dim() != c.inner_dim() ||
      back.rotary_dim != c.rotary_dim || back.tie_word_embeddings != c.tie_word_embeddings)
    throw Error("verify: config.json does not read back as written");
}

// Every tensor's dtype and shape, its first 4096 and last values bit for bit; returns the
// mean and sd of the sampled normal values divided by their std (about 0 and 1).
std::pair<double, double> check_tensors(const Checkpoint& ckpt, const std::vector<Planned>& tensors, DType dtype,
                                        uint64_t seed) {
  if (ckpt.tensors().size() != tensors.size())
    throw Error("verify: " + std::to_string(ckpt.tensors().size()) + " tensors in the checkpoint, expected " +
                std::to_string(tensors.size()));
  const size_t elem = dtype_size(dtype);
  std::vector<char> expect(4096 * 4);
  double sum = 0, sum2 = 0;
  int64_t count = 0;
  for (const Planned& p : tensors) {
    const TensorView& t = ckpt.get(p.name);
    if (t.dtype != dtype || t.shape != p.shape || t.nbytes != static_cast<size_t>(p.numel()) * elem)
      throw Error("verify: tensor '" + p.name + "' has the wrong dtype or shape");
    const int64_t n = std::min<int64_t>(4096, p.numel());
    fill_values(p, tensor_key(seed, p.name), dtype, 0, n, expect.data());
    if (std::memcmp(expect.data(), t.data, n * elem) != 0)
      throw Error("verify: tensor '" + p.name + "': stored values differ from the generator's");
    fill_values(p, tensor_key(seed, p.name), dtype, p.numel() - 1, p.numel(), expect.data());
    if (std::memcmp(expect.data(), t.data + (p.numel() - 1) * elem, elem) != 0)
      throw Error("verify: tensor '" + p.name + "': last value differs from the generator's");
    if (p.init != Init::Normal) continue;
    for (int64_t i = 0; i < n; ++i) {
      const double v = stored_to_float(t.data + i * elem, dtype) / p.std;
      sum += v, sum2 += v * v, ++count;
    }
  }
  const double mean = sum / std::max<int64_t>(1, count);
  return {mean, std::sqrt(sum2 / std::max<int64_t>(1, count) - mean * mean)};
}

std::string check_forward(const fs::path& dir) {
  const auto t0 = Clock::now();
  auto model = Model::load(dir);
  std::vector<int32_t> ids = {464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290};
  for (auto& id : ids) id %= model->config().vocab_size;
  const std::vector<float> logits = model->logits(ids);
  double lsum = 0, lmax = 0;
  for (float v : logits) {
    if (!std::isfinite(v)) throw Error("verify: non-finite logit after Model::load");
    lsum += v, lmax = std::max<double>(lmax, std::fabs(v));
  }
  char line[256];
  std::snprintf(line, sizeof line,
                "verify: Model::load (float32) + forward of %zu tokens OK: %zu finite logits, mean %+.4f, max |logit| "
                "%.3f (%.1f s)\n",
                ids.size(), logits.size(), lsum / logits.size(), lmax, seconds_since(t0));
  return line;
}

}  // namespace

// ---- public ----------------------------------------------------------------------------------

const std::vector<std::string>& random_checkpoint_presets() {
  static const std::vector<std::string> names = {"gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "gpt-j-6b"};
  return names;
}

ModelConfig random_checkpoint_config(const std::string& preset, const ShapeOverrides& ov) {
  const auto& names = random_checkpoint_presets();
  if (std::find(names.begin(), names.end(), preset) == names.end())
    throw Error("--preset: unknown '" + preset + "' (gpt2, gpt2-medium, gpt2-large, gpt2-xl, gpt-j-6b)");
  ModelConfig c;  // gpt2 (124M): ModelConfig's defaults are HF's GPT2Config
  if (preset == "gpt2-medium") c.n_layer = 24, c.n_head = 16, c.n_embd = 1024;
  if (preset == "gpt2-large") c.n_layer = 36, c.n_head = 20, c.n_embd = 1280;
  if (preset == "gpt2-xl") c.n_layer = 48, c.n_head = 25, c.n_embd = 1600;
  if (preset == "gpt-j-6b") {  // EleutherAI/gpt-j-6b config.json
    c.arch = Arch::GPTJ, c.model_type = "gptj";
    c.n_layer = 28, c.n_head = 16, c.n_embd = 4096, c.n_positions = 2048, c.vocab_size = 50400;
    c.rotary_dim = 64, c.tie_word_embeddings = false;
  }
  if (ov.rotary_dim && c.arch != Arch::GPTJ) throw Error("--rotary_dim: only for the gpt-j-6b preset");
  const std::pair<const char*, std::optional<int>> flags[] = {
      {"--n_layer", ov.n_layer},         {"--n_head", ov.n_head},         {"--n_embd", ov.n_embd},
      {"--n_inner", ov.n_inner},         {"--n_positions", ov.n_positions}, {"--vocab_size", ov.vocab_size},
      {"--rotary_dim", ov.rotary_dim}};
  for (const auto& [flag, v] : flags)
    if (v && (*v <= 0 || *v > (1 << 30))) throw Error(std::string(flag) + ": expected a positive integer, got " + std::to_string(*v));
  c.n_layer = ov.n_layer.value_or(c.n_layer);
  c.n_head = ov.n_head.value_or(c.n_head);
  c.n_embd = ov.n_embd.value_or(c.n_embd);
  c.n_inner = ov.n_inner.value_or(c.n_inner);
  c.n_positions = ov.n_positions.value_or(c.n_positions);
  c.vocab_size = ov.vocab_size.value_or(c.vocab_size);
  c.rotary_dim = ov.rotary_dim.value_or(c.rotary_dim);
  c.bos_token_id = c.eos_token_id = c.vocab_size > 50256 ? 50256 : c.vocab_size - 1;
  // Round-trip through the parser so every shape check of config.json applies here too.
  return parse_model_config(model_config_json(c), "--preset/--n_* options");
}

DType parse_stored_dtype(const std::string& s, const std::string& flag) {
  if (s == "float32" || s == "fp32") return DType::F32;
  if (s == "bfloat16" || s == "bf16") return DType::BF16;
  if (s == "float16" || s == "fp16") return DType::F16;
  throw Error(flag + ": unknown '" + s + "' (float32, bfloat16, float16)");
}

uint64_t parse_shard_size(const std::string& s, const std::string& flag) {
  static const std::regex re(R"(^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B|B)?\s*$)", std::regex::icase);
  std::smatch m;
  if (!std::regex_match(s, m, re)) throw Error(flag + ": cannot read '" + s + "' (e.g. 5GB, 500MB, 2GiB)");
  std::string unit = m[2];
  for (auto& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  static const std::pair<const char*, double> units[] = {
      {"", 1},       {"B", 1},       {"KB", 1e3},     {"MB", 1e6},           {"GB", 1e9},
      {"TB", 1e12},  {"KIB", 1024.0}, {"MIB", 1048576.0}, {"GIB", 1073741824.0}, {"TIB", 1099511627776.0}};
  double mult = 1;
  for (const auto& [u, f] : units)
    if (unit == u) mult = f;
  const double bytes = std::stod(m[1]) * mult;
  if (bytes < 1 || bytes > 1e18) throw Error(flag + ": '" + s + "' is not a usable size");
  return static_cast<uint64_t>(bytes);
}

RandomCheckpointSummary write_random_checkpoint(const fs::path& dir_arg, const ModelConfig& c,
                                                const RandomCheckpointOptions& o) {
  const auto t0 = Clock::now();
  if (o.dtype != DType::F32 && o.dtype != DType::BF16 && o.dtype != DType::F16)
    throw Error("--dtype: random checkpoints are stored as float32, bfloat16 or float16");
  if (!o.tokenizer.empty()) check_tokenizer_folder(o.tokenizer);
  const fs::path dir = without_trailing_slash(dir_arg);
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec)) throw Error("'" + dir.string() + "' exists and is not a folder");
  const fs::path staging = staging_folder(dir);
  fs::remove_all(staging, ec);  // left by a killed run that had this same pid
  fs::create_directories(staging, ec);
  if (ec) throw Error("cannot create folder '" + staging.string() + "': " + ec.message());
  RandomCheckpointSummary sum;
  try {
    std::vector<std::string> order = write_weights(staging, c, o, sum);
    write_text_atomic(staging / "config.json", config_json(c, o.dtype));
    write_text_atomic(staging / "generation_config.json", generation_config_json(c));
    if (!o.tokenizer.empty()) copy_tokenizer_files(o.tokenizer, staging);
    for (const auto& f : folder_listing(staging))
      if (std::find(order.begin(), order.end(), f) == order.end()) order.push_back(f);
    if (o.before_publish) o.before_publish(staging);
    publish(staging, dir, order);
  } catch (...) {
    fs::remove_all(staging, ec);
    throw;
  }
  sum.seconds = seconds_since(t0);
  return sum;
}

std::string verify_random_checkpoint(const fs::path& dir, const ModelConfig& c, const RandomCheckpointOptions& o) {
  const auto t0 = Clock::now();
  check_config_reads_back(dir, c);
  const std::vector<Planned> tensors = plan(c);
  const Checkpoint ckpt = Checkpoint::open(dir);
  const auto [mean, sd] = check_tensors(ckpt, tensors, o.dtype, o.seed);
  char line[512];
  std::snprintf(line, sizeof line,
                "verify: %s: %zu tensors, dtype/shape/sampled values OK; sampled normal values / their std: mean %+.4f, "
                "sd %.4f (%.1f s)\n",
                ckpt.description().c_str(), tensors.size(), mean, sd, seconds_since(t0));
  std::string report = line;
  int64_t params = 0;
  for (const Planned& p : tensors) params += p.numel();
  if (params <= 1'500'000'000) return report + check_forward(dir);
  std::snprintf(line, sizeof line, "verify: %.2f B parameters: Model::load + forward skipped (bench_generate --dir loads it)\n",
                params / 1e9);
  return report + line;
}

}  // namespace lmforge
