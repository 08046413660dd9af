// Writes a random-weight HF checkpoint folder of a real model shape (GPT-J-6B, GPT-2, GPT-2
// medium), streaming tensor by tensor so the whole model is never in memory: what
// `save_pretrained` of a freshly initialised HF model would write, in the stored dtype chosen.
// For benchmarks of models too big to hold twice (GPT-J-6B is 12.1 GB in bf16), since no
// pretrained weights can be downloaded here. See docs/PERFORMANCE.md.
//
//   make_random_checkpoint --preset gpt-j-6b|gpt2|gpt2-medium --dtype bfloat16|float16|float32 --out DIR
//                          [--max_shard_size 5GB] [--seed N] [--tokenizer DIR] [--threads N]
//                          [--n_layer N] [--n_embd N] [--n_head N] [--n_inner N] [--n_positions N]
//                          [--vocab_size N] [--rotary_dim N] [--keep_page_cache] [--verify]
//
// Folder: config.json (HF's values for the preset, torch_dtype = --dtype), generation_config.json,
// model.safetensors, or model-0000i-of-0000K.safetensors + model.safetensors.index.json when the
// tensors exceed --max_shard_size (HF's rule: shards filled in named_parameters() order, a new one
// when the next tensor would tip the current one over the limit, a bigger tensor alone), and the
// tokenizer files of --tokenizer (default data/gpt2-tokenizer when it exists).
// Values: matrices and embeddings N(0, 0.02) (GPT-2's residual projections c_proj scaled by
// 1/sqrt(2 n_layer), as HF initialises them), layer-norm gains 1, biases 0. The normal is
// approximate (sum of four 16-bit uniforms from a counter-based splitmix64, so |z| < 3.47) and
// every value depends only on (seed, tensor name, element index): the same bytes whatever the
// thread count or the sharding.
// Each shard is written to "<name>.tmp" and renamed; written pages are flushed and dropped from
// the page cache as it goes (--keep_page_cache keeps them), so a 12 GB write does not push the
// rest of a shared machine out of memory. --verify reopens the folder with lmforge's loader
// (Checkpoint::open), checks every tensor's dtype, shape and a sample of its values, and for
// models under 1.5 B parameters runs Model::load and one forward pass.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lmforge/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/io/tensor.h"
#include "lmforge/kernels/kernels.h"
#include "lmforge/model/config.h"
#include "lmforge/model/model.h"
#include "lmforge/model/save.h"

using namespace lmforge;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// ---------------------------------------------------------------------------------------------
// The tensors of a model, in HF named_parameters() order, with their initialisation.

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

// ---------------------------------------------------------------------------------------------
// Values: counter-based, so any element can be produced independently (threads, verification).

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

inline uint16_t to_bf16(float f) {  // round to nearest even; the values here are finite
  const uint32_t u = std::bit_cast<uint32_t>(f);
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
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
  } else if (dtype == DType::BF16) {
    uint16_t* o = static_cast<uint16_t*>(out);
    for (int64_t k = 0; k < n; ++k) o[k] = to_bf16(value(i0 + k));
  } else {
    uint16_t* o = static_cast<uint16_t*>(out);
    for (int64_t k = 0; k < n; ++k) o[k] = float_to_fp16(value(i0 + k));
  }
}

// ---------------------------------------------------------------------------------------------
// Files.

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

void write_text_atomic(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc | std::ios::binary);
    out << text;
    if (!out.flush()) throw Error("cannot write '" + path.string() + "'");
  }
  fs::rename(tmp, path);
}

// "5GB", "500MB", "10GiB", "100KB", "123" (bytes), as transformers' convert_file_size_to_int.
uint64_t parse_size(const std::string& s) {
  static const std::regex re(R"(^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B|B)?\s*$)", std::regex::icase);
  std::smatch m;
  if (!std::regex_match(s, m, re)) throw Error("--max_shard_size: cannot read '" + s + "' (e.g. 5GB, 500MB, 2GiB)");
  const double v = std::stod(m[1]);
  std::string unit = m[2];
  for (auto& ch : unit) ch = static_cast<char>(std::toupper(ch));
  double mult = 1;
  if (unit == "KB") mult = 1e3;
  if (unit == "MB") mult = 1e6;
  if (unit == "GB") mult = 1e9;
  if (unit == "TB") mult = 1e12;
  if (unit == "KIB") mult = 1024.0;
  if (unit == "MIB") mult = 1024.0 * 1024;
  if (unit == "GIB") mult = 1024.0 * 1024 * 1024;
  if (unit == "TIB") mult = 1024.0 * 1024 * 1024 * 1024;
  const double bytes = v * mult;
  if (bytes < 1) throw Error("--max_shard_size must be positive");
  return static_cast<uint64_t>(bytes);
}

struct Shard {
  std::string file;
  std::vector<const Planned*> tensors;  // HF order
  uint64_t bytes = 0;
};

// huggingface_hub's split_state_dict_into_shards: in order; a tensor over the limit gets its own
// shard; otherwise a new shard starts when the next tensor would tip the current one over.
std::vector<Shard> plan_shards(const std::vector<Planned>& plan, size_t elem, uint64_t max_bytes) {
  std::vector<Shard> shards;
  Shard cur;
  for (const Planned& p : plan) {
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

// Streams one shard: header (offsets computed from the shapes; tensors in name order, as the
// safetensors library lays out tensors of one dtype), then every tensor's values, generated in
// chunks on the kernel threads while the previous chunk is being written.
void write_shard(const fs::path& file, const Shard& shard, DType dtype, uint64_t seed, bool drop_cache,
                 double* generate_s) {
  const size_t elem = dtype_size(dtype);
  std::vector<const Planned*> order = shard.tensors;
  std::sort(order.begin(), order.end(), [](const Planned* a, const Planned* b) { return a->name < b->name; });
  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t off = 0;
  for (const Planned* p : order) {
    const uint64_t b = static_cast<uint64_t>(p->numel()) * elem;
    header[p->name] = {{"dtype", dtype_name(dtype)}, {"shape", p->shape}, {"data_offsets", {off, off + b}}};
    off += b;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  const fs::path tmp = file.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error("cannot create '" + tmp.string() + "': " + std::strerror(errno));
  try {
    unsigned char len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(static_cast<uint64_t>(h.size()) >> (8 * i));
    write_all(fd, len, 8, tmp.string());
    write_all(fd, h.data(), h.size(), tmp.string());

    // Two 64 MiB buffers: one filled by the threads while the other is written (and its pages,
    // once on disk, dropped from the page cache).
    const size_t chunk_elems = (64u << 20) / elem;
    std::vector<char> buf[2] = {std::vector<char>(chunk_elems * elem), std::vector<char>(chunk_elems * elem)};
    std::future<void> pending;
    off_t file_pos = static_cast<off_t>(8 + h.size());
    off_t flushed = 0;  // [0, flushed) is on disk and dropped
    int which = 0;
    auto flush_behind = [&](off_t upto) {
      if (!drop_cache || upto <= flushed) return;
      // Wait for the writeback of what is already written, then drop it from the page cache.
      ::sync_file_range(fd, flushed, upto - flushed,
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
      ::posix_fadvise(fd, flushed, upto - flushed, POSIX_FADV_DONTNEED);
      flushed = upto;
    };
    for (const Planned* p : order) {
      const uint64_t key = tensor_key(seed, p->name);
      const int64_t n = p->numel();
      for (int64_t i0 = 0; i0 < n; i0 += static_cast<int64_t>(chunk_elems)) {
        const int64_t i1 = std::min<int64_t>(n, i0 + static_cast<int64_t>(chunk_elems));
        char* out = buf[which].data();
        const auto t0 = Clock::now();
        const int64_t per = 1 << 16;  // elements per task
        const int tasks = static_cast<int>((i1 - i0 + per - 1) / per);
        kernels::parallel_for(tasks, [&](int t) {
          const int64_t a = i0 + t * per, b = std::min(i1, a + per);
          fill_values(*p, key, dtype, a, b, out + (a - i0) * elem);
        });
        *generate_s += seconds_since(t0);
        if (pending.valid()) pending.get();
        const size_t nbytes = static_cast<size_t>(i1 - i0) * elem;
        const off_t pos = file_pos;
        pending = std::async(std::launch::async, [&, out, nbytes, pos] {
          write_all(fd, out, nbytes, tmp.string());
          if (drop_cache) {
            ::sync_file_range(fd, pos, static_cast<off_t>(nbytes), SYNC_FILE_RANGE_WRITE);  // start writeback
            flush_behind(pos);  // the chunk before this one
          }
        });
        file_pos += static_cast<off_t>(nbytes);
        which ^= 1;
      }
    }
    if (pending.valid()) pending.get();
    if (::fdatasync(fd) != 0) throw Error("cannot flush '" + tmp.string() + "': " + std::strerror(errno));
    flush_behind(file_pos);
    if (static_cast<uint64_t>(file_pos) != 8 + h.size() + off) throw Error("internal: shard size mismatch");
  } catch (...) {
    ::close(fd);
    std::error_code ec;
    fs::remove(tmp, ec);
    throw;
  }
  if (::close(fd) != 0) throw Error("cannot close '" + tmp.string() + "': " + std::strerror(errno));
  fs::rename(tmp, file);
}

// config.json as HF writes it for the architecture (EleutherAI/gpt-j-6b's and openai-community/gpt2's
// extra keys included), with torch_dtype = the stored dtype.
std::string config_json(const ModelConfig& c, const std::string& torch_dtype) {
  nlohmann::json j = nlohmann::json::parse(model_config_json(c));
  j["torch_dtype"] = torch_dtype;
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

// ---------------------------------------------------------------------------------------------
// --verify

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

void verify(const fs::path& dir, const ModelConfig& c, const std::vector<Planned>& plan, DType dtype, uint64_t seed) {
  const auto t0 = Clock::now();
  const ModelConfig back = load_model_config(dir / "config.json");
  if (back.arch != c.arch || back.n_layer != c.n_layer || back.n_embd != c.n_embd || back.n_head != c.n_head ||
      back.vocab_size != c.vocab_size || back.n_positions != c.n_positions || back.inner_dim() != c.inner_dim() ||
      back.rotary_dim != c.rotary_dim || back.tie_word_embeddings != c.tie_word_embeddings)
    throw Error("verify: config.json does not read back as written");
  const Checkpoint ckpt = Checkpoint::open(dir);
  if (ckpt.tensors().size() != plan.size())
    throw Error("verify: " + std::to_string(ckpt.tensors().size()) + " tensors in the checkpoint, expected " +
                std::to_string(plan.size()));
  const size_t elem = dtype_size(dtype);
  std::vector<char> expect(4096 * 4);
  double sum = 0, sum2 = 0;
  int64_t count = 0;
  for (const Planned& p : plan) {
    const TensorView& t = ckpt.get(p.name);
    if (t.dtype != dtype || t.shape != p.shape || t.nbytes != static_cast<size_t>(p.numel()) * elem)
      throw Error("verify: tensor '" + p.name + "' has the wrong dtype or shape");
    // The first 4096 elements and the last one, bit for bit.
    const int64_t n = std::min<int64_t>(4096, p.numel());
    fill_values(p, tensor_key(seed, p.name), dtype, 0, n, expect.data());
    if (std::memcmp(expect.data(), t.data, n * elem) != 0)
      throw Error("verify: tensor '" + p.name + "': stored values differ from the generator's");
    fill_values(p, tensor_key(seed, p.name), dtype, p.numel() - 1, p.numel(), expect.data());
    if (std::memcmp(expect.data(), t.data + (p.numel() - 1) * elem, elem) != 0)
      throw Error("verify: tensor '" + p.name + "': last value differs from the generator's");
    if (p.init == Init::Normal)
      for (int64_t i = 0; i < n; ++i) {
        const double v = stored_to_float(t.data + i * elem, dtype) / p.std;
        sum += v, sum2 += v * v, ++count;
      }
  }
  const double mean = sum / std::max<int64_t>(1, count), sd = std::sqrt(sum2 / std::max<int64_t>(1, count) - mean * mean);
  std::printf("verify: %s: %zu tensors, dtype/shape/sampled values OK; sampled normal values / their std: mean %+.4f, sd %.4f "
              "(%.1f s)\n",
              ckpt.description().c_str(), plan.size(), mean, sd, seconds_since(t0));
  int64_t params = 0;
  for (const Planned& p : plan) params += p.numel();
  if (params > 1'500'000'000) {
    std::printf("verify: %.2f B parameters: Model::load + forward skipped (bench_generate --dir loads it)\n", params / 1e9);
    return;
  }
  const auto t1 = Clock::now();
  auto model = Model::load(dir);
  const std::vector<int32_t> ids = {464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290};
  const std::vector<float> logits = model->logits(ids);
  double lsum = 0, lmax = 0;
  for (float v : logits) {
    if (!std::isfinite(v)) throw Error("verify: non-finite logit after Model::load");
    lsum += v, lmax = std::max<double>(lmax, std::fabs(v));
  }
  std::printf("verify: Model::load (float32) + forward of %zu tokens OK: %zu finite logits, mean %+.4f, max |logit| %.3f "
              "(%.1f s)\n",
              ids.size(), logits.size(), lsum / logits.size(), lmax, seconds_since(t1));
}

// ---------------------------------------------------------------------------------------------

ModelConfig preset_config(const std::string& name) {
  ModelConfig c;  // gpt2 (124M)
  if (name == "gpt2-medium") c.n_layer = 24, c.n_head = 16, c.n_embd = 1024;
  if (name == "gpt-j-6b") {  // EleutherAI/gpt-j-6b config.json
    c.arch = Arch::GPTJ, c.model_type = "gptj";
    c.n_layer = 28, c.n_head = 16, c.n_embd = 4096, c.n_positions = 2048, c.vocab_size = 50400;
    c.rotary_dim = 64, c.tie_word_embeddings = false;
  }
  c.n_inner = 0;  // null: 4 * n_embd
  c.activation = Activation::GeluNew, c.activation_name = "gelu_new";
  c.layer_norm_epsilon = 1e-5f;
  c.bos_token_id = c.eos_token_id = 50256;
  return c;
}

void usage() {
  std::fprintf(stderr,
               "usage: make_random_checkpoint --preset gpt-j-6b|gpt2|gpt2-medium --dtype bfloat16|float16|float32 --out DIR\n"
               "         [--max_shard_size 5GB] [--seed N] [--tokenizer DIR] [--threads N] [--n_layer N] [--n_embd N]\n"
               "         [--n_head N] [--n_inner N] [--n_positions N] [--vocab_size N] [--rotary_dim N]\n"
               "         [--keep_page_cache] [--verify]\n");
}

}  // namespace

int main(int argc, char** argv) try {
  std::string preset, dtype_name_arg, out, max_shard = "5GB", tokenizer;
  bool tokenizer_given = false, keep_cache = false, do_verify = false;
  uint64_t seed = 42;
  int threads = 0;
  std::map<std::string, int> overrides;
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--help" || k == "-h") {
      usage();
      return 0;
    }
    if (k == "--keep_page_cache") { keep_cache = true; continue; }
    if (k == "--verify") { do_verify = true; continue; }
    if (i + 1 >= argc) { std::fprintf(stderr, "error: option %s needs a value\n", k.c_str()); return 2; }
    const std::string v = argv[++i];
    auto integer = [&]() {
      size_t used = 0;
      long long x = 0;
      try { x = std::stoll(v, &used); } catch (...) { used = 0; }
      if (used != v.size() || x <= 0 || x > (1ll << 30)) throw Error(k + ": expected a positive integer, got '" + v + "'");
      return static_cast<int>(x);
    };
    if (k == "--preset") preset = v;
    else if (k == "--dtype") dtype_name_arg = v;
    else if (k == "--out") out = v;
    else if (k == "--max_shard_size") max_shard = v;
    else if (k == "--tokenizer") tokenizer = v, tokenizer_given = true;
    else if (k == "--seed") seed = std::stoull(v);
    else if (k == "--threads") threads = integer();
    else if (k == "--n_layer" || k == "--n_embd" || k == "--n_head" || k == "--n_inner" || k == "--n_positions" ||
             k == "--vocab_size" || k == "--rotary_dim")
      overrides[k.substr(2)] = integer();
    else { std::fprintf(stderr, "error: unknown option %s\n", k.c_str()); usage(); return 2; }
  }
  if (preset.empty() || dtype_name_arg.empty() || out.empty()) { usage(); return 2; }
  if (preset != "gpt-j-6b" && preset != "gpt2" && preset != "gpt2-medium")
    throw Error("--preset: unknown '" + preset + "' (gpt-j-6b, gpt2, gpt2-medium)");
  DType dtype;
  std::string torch_dtype;
  if (dtype_name_arg == "bfloat16" || dtype_name_arg == "bf16") dtype = DType::BF16, torch_dtype = "bfloat16";
  else if (dtype_name_arg == "float16" || dtype_name_arg == "fp16") dtype = DType::F16, torch_dtype = "float16";
  else if (dtype_name_arg == "float32" || dtype_name_arg == "fp32") dtype = DType::F32, torch_dtype = "float32";
  else throw Error("--dtype: unknown '" + dtype_name_arg + "' (bfloat16, float16, float32)");
  if (threads > 0) kernels::set_num_threads(threads);

  ModelConfig c = preset_config(preset);
  for (const auto& [k, v] : overrides) {
    if (k == "n_layer") c.n_layer = v;
    if (k == "n_embd") c.n_embd = v;
    if (k == "n_head") c.n_head = v;
    if (k == "n_inner") c.n_inner = v;
    if (k == "n_positions") c.n_positions = v;
    if (k == "vocab_size") c.vocab_size = v;
    if (k == "rotary_dim") c.rotary_dim = v;
  }
  if (overrides.count("rotary_dim") && c.arch != Arch::GPTJ) throw Error("--rotary_dim: GPT-J presets only");
  if (c.vocab_size <= 50256) c.bos_token_id = c.eos_token_id = c.vocab_size - 1;
  const std::string config_text = config_json(c, torch_dtype);
  c = parse_model_config(config_text, "--preset/--n_* options");  // every shape check of the loader

  const std::vector<Planned> plan = c.arch == Arch::GPTJ ? plan_gptj(c) : plan_gpt2(c);
  const size_t elem = dtype_size(dtype);
  const std::vector<Shard> shards = plan_shards(plan, elem, parse_size(max_shard));
  uint64_t total = 0, params = 0;
  for (const Planned& p : plan) params += p.numel(), total += p.numel() * elem;

  // Tokenizer files, checked before anything is written.
  if (!tokenizer_given && fs::is_directory("data/gpt2-tokenizer")) tokenizer = "data/gpt2-tokenizer";
  std::vector<fs::path> tokenizer_files;
  if (!tokenizer.empty()) {
    for (const char* f : {"vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                          "added_tokens.json"})
      if (fs::exists(fs::path(tokenizer) / f)) tokenizer_files.push_back(fs::path(tokenizer) / f);
    if (tokenizer_files.empty()) throw Error("--tokenizer: no tokenizer files (vocab.json, merges.txt, tokenizer.json) in '" + tokenizer + "'");
  }

  std::error_code ec;
  fs::create_directories(out, ec);
  if (ec) throw Error("cannot create folder '" + out + "': " + ec.message());
  const fs::space_info space = fs::space(out);
  if (space.available < total + (256u << 20))
    throw Error("'" + out + "' has " + std::to_string(space.available / 1000000) + " MB free, the checkpoint needs " +
                std::to_string(total / 1000000) + " MB");

  std::printf("writing %s: %s shape, %.3f B parameters, %s, %.2f GB in %zu file%s, seed %llu, %d threads\n", out.c_str(),
              preset.c_str(), params / 1e9, torch_dtype.c_str(), total / 1e9, shards.size(), shards.size() == 1 ? "" : "s",
              static_cast<unsigned long long>(seed), kernels::num_threads());
  std::fflush(stdout);
  const auto t0 = Clock::now();
  double generate_s = 0;
  nlohmann::json weight_map = nlohmann::json::object();
  for (const Shard& s : shards) {
    const auto ts = Clock::now();
    write_shard(fs::path(out) / s.file, s, dtype, seed, !keep_cache, &generate_s);
    for (const Planned* p : s.tensors) weight_map[p->name] = s.file;
    std::printf("  %s  %zu tensors  %.2f GB  %.1f s\n", s.file.c_str(), s.tensors.size(), s.bytes / 1e9, seconds_since(ts));
    std::fflush(stdout);
  }
  // Weight files of an earlier checkpoint in the folder that this one replaces (HF removes them
  // too): a stale model.safetensors would be picked before a new index.
  std::vector<std::string> keep;
  for (const Shard& s : shards) keep.push_back(s.file);
  if (shards.size() > 1) {
    nlohmann::json index{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    write_text_atomic(fs::path(out) / "model.safetensors.index.json", index.dump(2) + "\n");
    keep.push_back("model.safetensors.index.json");
  }
  static const std::regex stale(R"(model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?)");
  for (const auto& e : fs::directory_iterator(out)) {
    const std::string f = e.path().filename().string();
    if (std::regex_match(f, stale) && std::find(keep.begin(), keep.end(), f) == keep.end()) {
      fs::remove(e.path());
      std::printf("  removed stale %s\n", f.c_str());
    }
  }
  write_text_atomic(fs::path(out) / "config.json", config_text);
  nlohmann::json gen{{"_from_model_config", true}, {"bos_token_id", 50256}, {"eos_token_id", 50256},
                     {"transformers_version", "4.38.2"}};
  if (c.bos_token_id) gen["bos_token_id"] = *c.bos_token_id;
  if (c.eos_token_id) gen["eos_token_id"] = *c.eos_token_id;
  write_text_atomic(fs::path(out) / "generation_config.json", gen.dump(2) + "\n");
  for (const auto& src : tokenizer_files) fs::copy_file(src, fs::path(out) / src.filename(), fs::copy_options::overwrite_existing);
  const double secs = seconds_since(t0);
  std::printf("wrote %.2f GB in %.1f s (%.0f MB/s; generating the values took %.1f s of it)%s%s\n", total / 1e9, secs,
              total / 1e6 / secs, generate_s, tokenizer_files.empty() ? "" : "; tokenizer from ",
              tokenizer_files.empty() ? "" : tokenizer.c_str());
  std::fflush(stdout);
  if (do_verify) verify(out, c, plan, dtype, seed);
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
