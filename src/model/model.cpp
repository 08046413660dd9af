// Model loading and the decoding session (embedding → blocks → ln_f → lm_head over a KV cache).
#include "lmforge/model/model.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "lmforge/error.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/kernels/kernels.h"
#include "lmforge/model/lora.h"
#include "lmforge/model/weights.h"
#include "model/block.h"
#include "model/kv_cache.h"
#include "model/large_buffer.h"
#include "model/ragged_batch.h"

namespace lmforge {
namespace {

class DecoderSession : public LanguageModelSession {
 public:
  DecoderSession(const Model& m, const Rope* rope, int rows, int capacity)
      : LanguageModelSession(rows), m_(m), rope_(rope),
        cache_(m.config().n_layer, rows, capacity, m.config().n_embd) {}

  void forward(int n, const int32_t* tokens, const int32_t* positions, const uint8_t* mask, float* logits,
               bool all_positions) override {
    const ModelConfig& c = m_.config();
    if (n <= 0) throw Error("forward: no tokens to run");
    if (length_ + n > cache_.capacity())
      throw Error("sequence of " + std::to_string(length_ + n) + " tokens exceeds the context of " +
                  std::to_string(cache_.capacity()) + " (n_positions " + std::to_string(c.n_positions) + ")");
    check_inputs(n, tokens, positions);
    for (int r = 0; r < rows_; ++r) std::memcpy(cache_.mask(r) + length_, mask + r * n, n);

    // Padding goes through no layer: its keys are masked and nothing reads its outputs, so a
    // left-padded batch costs only its real tokens (the layers run on them packed together).
    const int all = rows_ * n;
    real_.clear();
    for (int i = 0; i < all; ++i)
      if (mask[i]) real_.push_back(i);
    const bool packed = static_cast<int>(real_.size()) < all;
    const int M = static_cast<int>(real_.size());
    x_.resize(static_cast<size_t>(M) * c.n_embd);
    embed(M, tokens, positions, packed ? real_.data() : nullptr);
    for (int l = 0; l < c.n_layer; ++l)
      block_forward(c, l, m_.block(l), rope_, x_.data(), rows_, n, positions, length_, cache_, scratch_,
                    packed ? &real_ : nullptr);
    length_ += n;
    head(n, logits, all_positions, packed);
  }

  void reorder(const std::vector<int>& src) override {
    if (static_cast<int>(src.size()) != rows_) throw Error("reorder: wrong number of rows");
    cache_.reorder(src, length_);
  }

  std::unique_ptr<LanguageModelSession> fork(const std::vector<int>& src, int capacity) const override {
    if (src.empty()) throw Error("fork: no rows");
    for (int s : src)
      if (s < 0 || s >= rows_) throw Error("fork: row " + std::to_string(s) + " does not exist");
    if (capacity < length_ || capacity > m_.config().n_positions)
      throw Error("fork: capacity " + std::to_string(capacity) + " is outside [" + std::to_string(length_) + ", n_positions " +
                  std::to_string(m_.config().n_positions) + "]");
    auto out = std::make_unique<DecoderSession>(m_, rope_, static_cast<int>(src.size()), std::max(capacity, 1));
    out->cache_.copy_rows_from(cache_, src, length_);
    out->length_ = length_;
    return out;
  }

 private:
  void check_inputs(int n, const int32_t* tokens, const int32_t* positions) const {
    check_forward_inputs(m_.config(), rows_ * n, tokens, positions);
  }

  // x_ = token + position embeddings of the M tokens (token index[i] of the batch, or token i).
  void embed(int M, const int32_t* tokens, const int32_t* positions, const int* index) {
    const ModelWeights& w = m_.weights();
    const int E = m_.config().n_embd;
    for (int i = 0; i < M; ++i) {
      const int t = index ? index[i] : i;
      float* xi = x_.data() + static_cast<size_t>(i) * E;
      embedding_row(w, tokens[t], E, xi);
      if (w.wpe) {
        const float* p = w.wpe + static_cast<size_t>(positions[t]) * E;
        for (int e = 0; e < E; ++e) xi[e] += p[e];
      }
    }
  }

  // ln_f and lm_head over the last token of each row, or every token; padding positions (packed
  // batch: not in x_) get logits 0.
  void head(int n, float* logits, bool all_positions, bool packed) {
    const ModelConfig& c = m_.config();
    const ModelWeights& w = m_.weights();
    const int E = c.n_embd, V = c.vocab_size;
    const int want = all_positions ? rows_ * n : rows_;
    // x_ row of each wanted position, -1 for padding.
    src_.assign(want, -1);
    for (int i = 0; i < want; ++i) {
      const int t = all_positions ? i : i * n + (n - 1);
      src_[i] = packed ? index_of(t) : t;
    }
    int M = 0;
    for (int i = 0; i < want; ++i) M += src_[i] >= 0;
    h_.resize(static_cast<size_t>(M) * E);
    for (int i = 0, k = 0; i < want; ++i)
      if (src_[i] >= 0)
        kernels::layer_norm(x_.data() + static_cast<size_t>(src_[i]) * E, 1, E, w.ln_f.w, w.ln_f.b,
                            c.layer_norm_epsilon, h_.data() + static_cast<size_t>(k++) * E);
    if (M == want) return kernels::matmul_wt(h_.data(), M, w.lm_head.matrix(), w.lm_head.b, logits);
    // Only the real positions through lm_head, then each into its place.
    packed_logits_.resize(static_cast<size_t>(M) * V);
    if (M > 0) kernels::matmul_wt(h_.data(), M, w.lm_head.matrix(), w.lm_head.b, packed_logits_.data());
    for (int i = 0, k = 0; i < want; ++i) {
      float* dst = logits + static_cast<size_t>(i) * V;
      if (src_[i] >= 0)
        std::memcpy(dst, packed_logits_.data() + static_cast<size_t>(k++) * V, V * sizeof(float));
      else
        std::fill(dst, dst + V, 0.0f);
    }
  }

  // Position of batch token t in the packed x_, or -1 when it is padding.
  int index_of(int t) const {
    const auto it = std::lower_bound(real_.begin(), real_.end(), t);
    return it != real_.end() && *it == t ? static_cast<int>(it - real_.begin()) : -1;
  }

  const Model& m_;
  const Rope* rope_;
  KVCache cache_;
  BlockScratch scratch_;
  LargeBuffer<float> x_, h_, packed_logits_;
  std::vector<int> real_, src_;  // packed batch: tokens that are not padding; head's rows
};

}  // namespace

Model::Model(ModelConfig cfg, std::shared_ptr<const ModelWeights> w) : config_(std::move(cfg)), weights_(std::move(w)) {
  if (config_.arch == Arch::GPTJ) {
    const int rot = config_.rotary_dim > 0 ? config_.rotary_dim : config_.head_dim();
    rope_ = std::make_unique<Rope>(rot, config_.n_positions);
  }
}

Model::~Model() = default;

std::unique_ptr<Model> Model::load(const std::filesystem::path& dir, std::optional<kernels::WeightType> dtype) {
  if (!std::filesystem::is_directory(dir)) throw Error("model folder '" + dir.string() + "' does not exist");
  ModelConfig cfg = load_model_config(dir / "config.json");
  const MatrixTypes types = dtype ? MatrixTypes(*dtype) : stored_matrix_types(cfg);
  return load_folder(dir, std::move(cfg), types);
}

std::unique_ptr<Model> Model::load_with_types(const std::filesystem::path& dir, const MatrixTypes& types) {
  if (!std::filesystem::is_directory(dir)) throw Error("model folder '" + dir.string() + "' does not exist");
  return load_folder(dir, load_model_config(dir / "config.json"), types);
}

std::unique_ptr<Model> Model::load_folder(const std::filesystem::path& dir, ModelConfig cfg, const MatrixTypes& types) {
  const Checkpoint ckpt = Checkpoint::open(dir);
  auto w = std::make_unique<ModelWeights>(allocate_weights(cfg, types));
  load_weights(ckpt, cfg, *w);
  return std::unique_ptr<Model>(new Model(std::move(cfg), std::move(w)));
}

std::unique_ptr<Model> Model::from_weights(ModelConfig cfg, ModelWeights w) {
  if (w.slices.empty()) throw Error("Model::from_weights: no weights");
  // The views point into w's vectors, whose buffers a move keeps.
  return std::unique_ptr<Model>(new Model(std::move(cfg), std::make_unique<ModelWeights>(std::move(w))));
}

const BlockWeights& Model::block(int l) const { return blocks_.empty() ? weights_->blocks[l] : blocks_[l]; }

std::unique_ptr<Model> Model::with_adapter(std::shared_ptr<const LoraAdapter> adapter) const {
  if (adapter_) throw Error("the model already has a LoRA adapter (merge it first: lmforge merge)");
  std::unique_ptr<Model> m(new Model(config_, weights_));
  m->adapter_ = std::move(adapter);
  m->blocks_ = weights_->blocks;
  attach_lora(*m->adapter_, m->blocks_);
  return m;
}

std::unique_ptr<LanguageModelSession> Model::start(int rows, int capacity) const {
  if (rows <= 0) throw Error("a session needs at least one row");
  if (capacity > config_.n_positions)
    throw Error("sequence length " + std::to_string(capacity) + " exceeds the model's context (n_positions " +
                std::to_string(config_.n_positions) + ")");
  return std::make_unique<DecoderSession>(*this, rope_.get(), rows, std::max(capacity, 1));
}

std::vector<float> Model::logits(const std::vector<int32_t>& ids) const {
  const int T = static_cast<int>(ids.size());
  if (T == 0) throw Error("logits: empty input");
  auto session = start(1, T);
  std::vector<int32_t> positions(T);
  for (int i = 0; i < T; ++i) positions[i] = i;
  std::vector<uint8_t> mask(T, 1);
  std::vector<float> out(static_cast<size_t>(T) * config_.vocab_size);
  session->forward(T, ids.data(), positions.data(), mask.data(), out.data(), true);
  return out;
}

}  // namespace lmforge
