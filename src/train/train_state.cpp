// Training checkpoints: atomic checkpoint-<step>/ folders, loading with shape checks, rotation.
#include "lmforge/train/train_state.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "io/io_util.h"
#include "lmforge/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/model/save.h"

namespace lmforge {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kStateFile = "trainer_state.json";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kStateFormat = "lmforge-trainer-state";
constexpr int kStateVersion = 1;

void fsync_path(const fs::path& p, bool directory) {
  const int fd = ::open(p.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0) throw Error("cannot open '" + p.string() + "' to sync it: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  // Some file systems refuse fsync on directories (EINVAL); the data files are what matters.
  if (rc != 0 && !(directory && (err == EINVAL || err == EROFS)))
    throw Error("cannot sync '" + p.string() + "': " + std::strerror(err));
}

// "checkpoint-<digits>[suffix]" -> step, when `name` has exactly that form.
std::optional<int64_t> checkpoint_step(const std::string& name, const std::string& suffix = "") {
  const std::string head = "checkpoint-";
  if (name.size() <= head.size() + suffix.size() || name.compare(0, head.size(), head) != 0) return std::nullopt;
  if (!suffix.empty() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) return std::nullopt;
  const std::string digits = name.substr(head.size(), name.size() - head.size() - suffix.size());
  if (digits.empty() || digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return std::stoll(digits);
}

void remove_tree(const fs::path& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
  if (ec) throw Error("cannot delete '" + p.string() + "': " + ec.message());
}

void rename_or_fail(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec) throw Error("cannot rename '" + from.string() + "' to '" + to.string() + "': " + ec.message());
}

// Typed getters for trainer_state.json.
const json& member(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) io::fail(where, "missing key '" + std::string(key) + "'");
  return *it;
}
int64_t get_i64(const json& j, const char* key, const std::string& where) {
  const json& v = member(j, key, where);
  if (!v.is_number_integer()) io::fail(where, "key '" + std::string(key) + "' must be an integer");
  return v.get<int64_t>();
}
uint64_t get_u64(const json& j, const char* key, const std::string& where) {
  const json& v = member(j, key, where);
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
    io::fail(where, "key '" + std::string(key) + "' must be a non-negative integer");
  return v.get<uint64_t>();
}
double get_f64(const json& j, const char* key, const std::string& where) {
  const json& v = member(j, key, where);
  if (!v.is_number()) io::fail(where, "key '" + std::string(key) + "' must be a number");
  return v.get<double>();
}
std::string get_str(const json& j, const char* key, const std::string& where) {
  const json& v = member(j, key, where);
  if (!v.is_string()) io::fail(where, "key '" + std::string(key) + "' must be a string");
  return v.get<std::string>();
}
const json& get_obj(const json& j, const char* key, const std::string& where) {
  const json& v = member(j, key, where);
  if (!v.is_object()) io::fail(where, "key '" + std::string(key) + "' must be an object");
  return v;
}

// The architecture fields that decide every parameter's shape.
void check_same_architecture(const ModelConfig& ck, const ModelConfig& m, const std::string& where) {
  auto differ = [&](const std::string& what, const std::string& a, const std::string& b) {
    io::fail(where, "the checkpoint's model does not match the model being trained: " + what + " " + a +
                        " in the checkpoint, " + b + " in the model");
  };
  auto arch_name = [](Arch a) { return std::string(a == Arch::GPT2 ? "gpt2" : "gptj"); };
  if (ck.arch != m.arch) differ("model_type", arch_name(ck.arch), arch_name(m.arch));
  const std::pair<const char*, std::pair<int, int>> dims[] = {
      {"n_layer", {ck.n_layer, m.n_layer}},       {"n_embd", {ck.n_embd, m.n_embd}},
      {"n_head", {ck.n_head, m.n_head}},          {"n_positions", {ck.n_positions, m.n_positions}},
      {"vocab_size", {ck.vocab_size, m.vocab_size}}, {"n_inner", {ck.inner_dim(), m.inner_dim()}},
      {"rotary_dim", {ck.rotary_dim, m.rotary_dim}}};
  for (const auto& [name, v] : dims)
    if (v.first != v.second) differ(name, std::to_string(v.first), std::to_string(v.second));
  if (ck.tie_word_embeddings != m.tie_word_embeddings)
    differ("tie_word_embeddings", ck.tie_word_embeddings ? "true" : "false", m.tie_word_embeddings ? "true" : "false");
}

// A --save_only_model checkpoint holds weights but no optimizer state: resuming from it would
// silently restart AdamW from zero moments, so it is refused with what to do instead.
void refuse_model_only(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_regular_file(dir / kStateFile, ec) || fs::exists(dir / kOptimizerFile, ec)) return;
  const json j = json::parse(io::read_text_file(dir / kStateFile, "trainer state"), nullptr, false);
  if (!j.is_object() || !j.value("save_only_model", false)) return;  // an ordinary incomplete folder
  io::fail(dir.string(), "was saved with --save_only_model (no optimizer state), so training cannot resume from it; "
                         "start a new run with --model " + dir.string() + " to fine-tune its weights further");
}

}  // namespace

// ---- files -----------------------------------------------------------------------------------

void write_file_atomic(const fs::path& file, const std::string& text) {
  const fs::path tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error("cannot write '" + tmp.string() + "': " + std::strerror(errno));
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.flush();
    if (!out) throw Error("cannot write '" + tmp.string() + "'");
  }
  fsync_path(tmp, false);
  rename_or_fail(tmp, file);
}

// ---- trainer_state.json ----------------------------------------------------------------------

std::string trainer_state_json(const TrainerState& s) {
  json j;
  j["format"] = kStateFormat;
  j["version"] = kStateVersion;
  j["global_step"] = s.global_step;
  j["epoch"] = s.epoch;
  j["max_steps"] = s.max_steps;
  j["num_train_epochs"] = s.num_train_epochs;
  j["tokens_seen"] = s.tokens_seen;
  j["num_parameters"] = s.num_parameters;
  j["data"] = {{"seed", s.data.seed},
               {"epoch", s.data.epoch},
               {"batch", s.data.batch},
               {"rows", s.data.rows},
               {"batch_size", s.data.batch_size}};
  j["rng_states"] = json::object();
  for (const auto& [k, v] : s.rng_states) j["rng_states"][k] = v;
  j["scheduler"] = {{"name", s.scheduler.name},
                    {"warmup_steps", s.scheduler.warmup_steps},
                    {"total_steps", s.scheduler.total_steps},
                    {"base_lr", s.scheduler.base_lr},
                    {"last_lr", s.scheduler.last_lr}};
  j["optimizer"] = {{"name", s.optimizer.name},
                    {"step", s.optimizer.step},
                    {"beta1", s.optimizer.beta1},
                    {"beta2", s.optimizer.beta2},
                    {"eps", s.optimizer.eps},
                    {"weight_decay", s.optimizer.weight_decay}};
  j["best_metric"] = s.best_metric ? json(*s.best_metric) : json(nullptr);
  j["best_model_checkpoint"] = s.best_model_checkpoint;
  j["log_history"] = json::array();
  for (const auto& r : s.log_history) j["log_history"].push_back(r);
  j["logging_window"] = {{"loss_sum", s.window_loss_sum}, {"steps", s.window_steps}};
  j["save_only_model"] = s.save_only_model;
  return j.dump(2) + "\n";
}

TrainerState parse_trainer_state(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    io::fail(where, std::string("invalid JSON: ") + e.what());
  }
  if (!j.is_object()) io::fail(where, "expected a JSON object");
  if (get_str(j, "format", where) != kStateFormat) io::fail(where, "not an lmforge trainer state (format key)");
  if (get_i64(j, "version", where) != kStateVersion)
    io::fail(where, "unsupported trainer state version " + std::to_string(get_i64(j, "version", where)));
  TrainerState s;
  s.global_step = get_i64(j, "global_step", where);
  s.epoch = get_f64(j, "epoch", where);
  s.max_steps = get_i64(j, "max_steps", where);
  s.num_train_epochs = static_cast<int>(get_i64(j, "num_train_epochs", where));
  s.tokens_seen = get_i64(j, "tokens_seen", where);
  s.num_parameters = get_i64(j, "num_parameters", where);
  const json& d = get_obj(j, "data", where);
  const std::string dw = where + " (data)";
  s.data.seed = get_u64(d, "seed", dw);
  s.data.epoch = get_i64(d, "epoch", dw);
  s.data.batch = get_i64(d, "batch", dw);
  s.data.rows = get_i64(d, "rows", dw);
  s.data.batch_size = get_i64(d, "batch_size", dw);
  for (const auto& [k, v] : get_obj(j, "rng_states", where).items()) {
    if (!v.is_string()) io::fail(where, "rng_states." + k + " must be a string");
    s.rng_states[k] = v.get<std::string>();
  }
  const json& sc = get_obj(j, "scheduler", where);
  const std::string sw = where + " (scheduler)";
  s.scheduler.name = get_str(sc, "name", sw);
  s.scheduler.warmup_steps = get_i64(sc, "warmup_steps", sw);
  s.scheduler.total_steps = get_i64(sc, "total_steps", sw);
  s.scheduler.base_lr = get_f64(sc, "base_lr", sw);
  s.scheduler.last_lr = get_f64(sc, "last_lr", sw);
  const json& op = get_obj(j, "optimizer", where);
  const std::string ow = where + " (optimizer)";
  s.optimizer.name = get_str(op, "name", ow);
  s.optimizer.step = get_i64(op, "step", ow);
  s.optimizer.beta1 = get_f64(op, "beta1", ow);
  s.optimizer.beta2 = get_f64(op, "beta2", ow);
  s.optimizer.eps = get_f64(op, "eps", ow);
  s.optimizer.weight_decay = get_f64(op, "weight_decay", ow);
  const json& best = member(j, "best_metric", where);
  if (!best.is_null()) s.best_metric = get_f64(j, "best_metric", where);
  s.best_model_checkpoint = get_str(j, "best_model_checkpoint", where);
  const json& hist = member(j, "log_history", where);
  if (!hist.is_array()) io::fail(where, "key 'log_history' must be a list");
  for (const auto& r : hist) s.log_history.push_back(r);
  // Later additions: optional, so checkpoints written before them still load.
  if (j.contains("logging_window")) {
    const json& lw = get_obj(j, "logging_window", where);
    s.window_loss_sum = get_f64(lw, "loss_sum", where + " (logging_window)");
    s.window_steps = get_i64(lw, "steps", where + " (logging_window)");
  }
  if (j.contains("save_only_model")) {
    if (!j["save_only_model"].is_boolean()) io::fail(where, "key 'save_only_model' must be true or false");
    s.save_only_model = j["save_only_model"].get<bool>();
  }
  return s;
}

// ---- listing / recovery / rotation -----------------------------------------------------------

std::vector<std::pair<int64_t, fs::path>> list_checkpoints(const fs::path& output_dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec)) return out;
  for (const auto& e : fs::directory_iterator(output_dir, ec)) {
    const auto step = checkpoint_step(e.path().filename().string());
    if (!step || !e.is_directory(ec)) continue;
    if (!fs::is_regular_file(e.path() / kStateFile, ec)) continue;
    out.emplace_back(*step, e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<fs::path> latest_checkpoint(const fs::path& output_dir) {
  auto all = list_checkpoints(output_dir);
  if (all.empty()) return std::nullopt;
  return all.back().second;
}

int recover_checkpoints(const fs::path& output_dir) {
  std::error_code ec;
  if (!fs::is_directory(output_dir, ec)) return 0;
  std::vector<fs::path> entries;
  for (const auto& e : fs::directory_iterator(output_dir, ec)) entries.push_back(e.path());
  int handled = 0;
  for (const auto& p : entries) {
    const std::string name = p.filename().string();
    if (checkpoint_step(name, ".tmp") || checkpoint_step(name, ".trash")) {
      remove_tree(p);
      ++handled;
    } else if (checkpoint_step(name, ".old")) {
      const fs::path final_dir = output_dir / name.substr(0, name.size() - 4);
      if (fs::exists(final_dir / kStateFile, ec)) remove_tree(p);
      else {
        if (fs::exists(final_dir, ec)) remove_tree(final_dir);
        rename_or_fail(p, final_dir);
      }
      ++handled;
    }
  }
  return handled;
}

std::vector<fs::path> rotate_checkpoints(const fs::path& output_dir, int limit, const fs::path& keep) {
  std::vector<fs::path> deleted;
  if (limit <= 0) return deleted;
  auto all = list_checkpoints(output_dir);
  if (all.empty()) return deleted;
  const fs::path newest = all.back().second;
  std::error_code ec;
  auto same = [&](const fs::path& a, const fs::path& b) {
    return !b.empty() && (a == b || fs::equivalent(a, b, ec));
  };
  size_t remaining = all.size();
  for (const auto& [step, path] : all) {
    if (remaining <= static_cast<size_t>(limit)) break;
    if (same(path, newest) || same(path, keep)) continue;
    const fs::path trash = path.string() + ".trash";
    rename_or_fail(path, trash);  // from here on it is no longer a checkpoint
    remove_tree(trash);
    deleted.push_back(path);
    --remaining;
  }
  return deleted;
}

// ---- save / load -----------------------------------------------------------------------------

fs::path save_checkpoint(const fs::path& output_dir, const ModelConfig& cfg, const ModelWeights& w,
                         std::span<const float> adam_m, std::span<const float> adam_v, const TrainerState& state,
                         const CheckpointSaveOptions& opt) {
  const size_t n = opt.lora ? opt.lora->params.size() : w.num_parameters();
  if (!opt.save_only_model && (adam_m.size() != n || adam_v.size() != n))
    throw Error("save_checkpoint: AdamW state holds " + std::to_string(adam_m.size()) + "/" + std::to_string(adam_v.size()) +
                " values, the model has " + std::to_string(n) + " parameters");
  if (state.global_step < 0) throw Error("save_checkpoint: negative global_step");
  std::error_code ec;
  fs::create_directories(output_dir, ec);
  if (ec) throw Error("cannot create folder '" + output_dir.string() + "': " + ec.message());
  recover_checkpoints(output_dir);

  const std::string name = "checkpoint-" + std::to_string(state.global_step);
  const fs::path final_dir = output_dir / name;
  const fs::path tmp = output_dir / (name + ".tmp");
  fs::create_directory(tmp, ec);
  if (ec) throw Error("cannot create folder '" + tmp.string() + "': " + ec.message());
  auto stage = [&](const char* s) {
    if (opt.on_stage) opt.on_stage(s);
  };

  if (opt.lora)
    save_lora_adapter(tmp, *opt.lora);
  else
    save_pretrained(tmp, cfg, w);
  stage("model");
  if (!opt.save_only_model)
    write_safetensors(tmp / kOptimizerFile,
                      {{"exp_avg", DType::F32, {static_cast<int64_t>(n)}, adam_m.data()},
                       {"exp_avg_sq", DType::F32, {static_cast<int64_t>(n)}, adam_v.data()}},
                      {{"format", "lmforge-adamw"},
                       {"layout", opt.lora ? "lmforge LoraAdapter::params" : "lmforge ModelWeights::params"},
                       {"num_parameters", std::to_string(n)},
                       {"step", std::to_string(state.optimizer.step)}});
  stage("optimizer");
  TrainerState st = state;
  st.num_parameters = static_cast<int64_t>(n);
  st.save_only_model = opt.save_only_model;
  if (opt.save_only_model) st.rng_states.clear();  // resume state HF leaves out too
  write_file_atomic(tmp / kStateFile, trainer_state_json(st));
  stage("trainer_state");
  if (!opt.tokenizer_dir.empty()) copy_tokenizer_files(opt.tokenizer_dir, tmp);
  if (!opt.train_config_yaml.empty()) write_file_atomic(tmp / "train_config.yml", opt.train_config_yaml);
  stage("extras");
  for (const auto& e : fs::directory_iterator(tmp)) fsync_path(e.path(), false);
  fsync_path(tmp, true);
  stage("fsync");

  if (fs::exists(final_dir, ec)) {  // re-saving a step: swap, then drop the old copy
    const fs::path old = output_dir / (name + ".old");
    if (fs::exists(old, ec)) remove_tree(old);
    rename_or_fail(final_dir, old);
    rename_or_fail(tmp, final_dir);
    remove_tree(old);
  } else {
    rename_or_fail(tmp, final_dir);
  }
  fsync_path(output_dir, true);

  if (opt.save_total_limit > 0) {
    fs::path keep;
    if (!state.best_model_checkpoint.empty()) {
      keep = state.best_model_checkpoint;
      if (keep.is_relative() && !fs::exists(keep, ec)) keep = output_dir / keep.filename();
    }
    rotate_checkpoints(output_dir, opt.save_total_limit, keep);
  }
  return final_dir;
}

namespace {

// trainer_state.json and the AdamW moments of a checkpoint whose trained parameters number `n`.
LoadedCheckpoint load_state_and_moments(const fs::path& dir, size_t n) {
  const std::string where = dir.string();
  LoadedCheckpoint out;
  out.state = parse_trainer_state(io::read_text_file(dir / kStateFile, "trainer state"), (dir / kStateFile).string());
  if (out.state.num_parameters != static_cast<int64_t>(n))
    io::fail(where, "the checkpoint was saved for " + std::to_string(out.state.num_parameters) +
                        " parameters, the model has " + std::to_string(n));
  const Checkpoint opt_ck = Checkpoint::open_safetensors(dir / kOptimizerFile);
  const std::string ow = (dir / kOptimizerFile).string();
  for (const char* name : {"exp_avg", "exp_avg_sq"}) {
    if (!opt_ck.has(name)) io::fail(ow, std::string("missing tensor '") + name + "'");
    const TensorView& t = opt_ck.get(name);
    if (t.dtype != DType::F32) io::fail(ow, std::string("tensor '") + name + "' must be F32, got " + dtype_name(t.dtype));
    if (t.shape.size() != 1 || t.shape[0] != static_cast<int64_t>(n))
      io::fail(ow, std::string("tensor '") + name + "' holds " + std::to_string(t.numel()) +
                       " values, the model has " + std::to_string(n) + " parameters");
    auto& dst = std::string(name) == "exp_avg" ? out.adam_m : out.adam_v;
    dst.resize(n);
    std::memcpy(dst.data(), t.data, n * sizeof(float));
  }
  return out;
}

void require_files(const fs::path& dir, std::initializer_list<const char*> files) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) io::fail(dir.string(), "no such checkpoint folder");
  refuse_model_only(dir);
  for (const char* f : files)
    if (!fs::is_regular_file(dir / f, ec)) io::fail(dir.string(), std::string("incomplete checkpoint: no ") + f);
}

std::string describe_lora(const LoraAdapter& a) {
  std::ostringstream s;
  s << "r " << a.config.r << ", lora_alpha " << a.config.lora_alpha << ", " << a.modules.size() << " modules";
  return s.str();
}

}  // namespace

LoadedCheckpoint load_checkpoint(const fs::path& dir, const ModelConfig& cfg, ModelWeights& w) {
  const std::string where = dir.string();
  if (fs::exists(dir / "adapter_config.json") && !fs::exists(dir / "config.json"))
    io::fail(where, "this is a LoRA checkpoint (adapter_config.json); resume it with --lora and the same LoRA settings");
  require_files(dir, {"config.json", "model.safetensors", kOptimizerFile, kStateFile});
  const ModelConfig ck_cfg = load_model_config(dir / "config.json");
  check_same_architecture(ck_cfg, cfg, where);
  LoadedCheckpoint out = load_state_and_moments(dir, w.num_parameters());
  const Checkpoint model_ck = Checkpoint::open(dir);
  load_weights(model_ck, cfg, w);
  return out;
}

LoadedCheckpoint load_lora_checkpoint(const fs::path& dir, const ModelConfig& cfg, LoraAdapter& a) {
  const std::string where = dir.string();
  if (fs::exists(dir / "config.json") && !fs::exists(dir / "adapter_config.json"))
    io::fail(where, "this is a full fine-tuning checkpoint, not a LoRA one; resume it without --lora");
  require_files(dir, {"adapter_config.json", "adapter_model.safetensors", kOptimizerFile, kStateFile});
  LoraAdapter saved = load_lora_adapter(dir, cfg);
  bool same = saved.config.r == a.config.r && saved.config.lora_alpha == a.config.lora_alpha &&
              saved.config.use_rslora == a.config.use_rslora && saved.modules.size() == a.modules.size();
  for (size_t i = 0; same && i < a.modules.size(); ++i) same = saved.modules[i].name == a.modules[i].name;
  if (!same)
    io::fail(where, "the checkpoint's LoRA configuration (" + describe_lora(saved) + ") differs from this run's (" +
                        describe_lora(a) + "); resume with the same --lora_r, --lora_alpha and --lora_target");
  LoadedCheckpoint out = load_state_and_moments(dir, a.params.size());
  a.params = std::move(saved.params);
  return out;
}

}  // namespace lmforge
