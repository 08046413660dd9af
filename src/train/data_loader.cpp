// Batching: right-padded rows or packed blocks, shuffled per epoch by (seed, epoch).
#include <algorithm>
#include <numeric>

#include "lmforge/error.h"
#include "lmforge/train/data.h"

namespace lmforge {

namespace {
// Epoch e shuffles with Rng(seed, kEpochStreamBase + e), independent of the split/sample streams.
constexpr uint64_t kEpochStreamBase = uint64_t{1} << 32;
}  // namespace

TrainBatch collate(const std::vector<std::span<const int32_t>>& rows, int32_t pad_id, int pad_to,
                   std::span<const int32_t> n_masked) {
  TrainBatch b;
  b.B = static_cast<int>(rows.size());
  size_t T = static_cast<size_t>(std::max(pad_to, 1));
  for (const auto& r : rows) T = std::max(T, r.size());
  b.T = static_cast<int>(T);
  const size_t n = rows.size() * T;
  b.input_ids.assign(n, pad_id);
  b.labels.assign(n, kIgnoreIndex);
  b.attention_mask.assign(n, 0);
  b.position_ids.resize(n);
  for (size_t i = 0; i < rows.size(); ++i) {
    const size_t base = i * T;
    for (size_t t = 0; t < T; ++t) b.position_ids[base + t] = static_cast<int32_t>(t);
    const size_t masked = n_masked.empty() ? 0 : static_cast<size_t>(std::max(n_masked[i], 0));
    for (size_t t = 0; t < rows[i].size(); ++t) {
      b.input_ids[base + t] = rows[i][t];
      b.labels[base + t] = t < masked ? kIgnoreIndex : rows[i][t];
      b.attention_mask[base + t] = 1;
    }
  }
  return b;
}

DataLoader::DataLoader(const std::vector<Example>& examples, const LoaderOptions& opt) : opt_(opt) {
  if (opt.batch_size <= 0) throw Error("per_device_train_batch_size must be positive, got " + std::to_string(opt.batch_size));
  if (opt.packing) {
    if (opt.block_size <= 0) throw Error("block_size must be positive, got " + std::to_string(opt.block_size));
    const size_t bs = static_cast<size_t>(opt.block_size);
    std::vector<int32_t> cur;
    cur.reserve(bs);
    for (const auto& ex : examples) {
      if (ex.n_masked > 0)  // TRL refuses packing with a completion-only collator too
        throw Error("a response template (completion-only loss) cannot be used with packing: rows are cut across examples");
      for (int32_t id : ex.ids) {
        cur.push_back(id);
        if (cur.size() == bs) {
          rows_.push_back(std::move(cur));
          cur = {};
          cur.reserve(bs);
        }
      }
    }
    if (!cur.empty()) rows_.push_back(std::move(cur));  // the partial last block, padded when batched
  } else {
    rows_.reserve(examples.size());
    bool any_masked = false;
    for (const auto& ex : examples) {
      if (ex.ids.empty()) continue;
      rows_.push_back(ex.ids);
      n_masked_.push_back(ex.n_masked);
      any_masked |= ex.n_masked > 0;
    }
    if (!any_masked) n_masked_.clear();
  }
  if (rows_.empty()) throw Error("no training rows to batch");
  if (batches_per_epoch() == 0)
    throw Error("batch size " + std::to_string(opt.batch_size) + " is larger than the " + std::to_string(rows_.size()) +
                " rows and drop_last is set: no batches");
  pos_ = {opt.seed, 0, 0, num_rows(), opt.batch_size};
}

int64_t DataLoader::batches_per_epoch() const {
  const int64_t n = num_rows(), bs = opt_.batch_size;
  return opt_.drop_last ? n / bs : (n + bs - 1) / bs;
}

int64_t DataLoader::num_tokens() const {
  int64_t n = 0;
  for (const auto& r : rows_) n += static_cast<int64_t>(r.size());
  return n;
}

std::vector<int64_t> DataLoader::epoch_order(int64_t epoch) const {
  std::vector<int64_t> order(rows_.size());
  std::iota(order.begin(), order.end(), 0);
  if (opt_.shuffle) {
    Rng rng(opt_.seed, kEpochStreamBase + static_cast<uint64_t>(epoch));
    rng.shuffle(order);
  }
  return order;
}

TrainBatch DataLoader::batch_at(int64_t epoch, int64_t batch) const {
  if (epoch < 0 || batch < 0 || batch >= batches_per_epoch())
    throw Error("data position out of range: epoch " + std::to_string(epoch) + " batch " + std::to_string(batch) + " of " +
                std::to_string(batches_per_epoch()));
  if (epoch != cached_epoch_) {
    cached_order_ = epoch_order(epoch);
    cached_epoch_ = epoch;
  }
  const int64_t begin = batch * opt_.batch_size;
  const int64_t end = std::min<int64_t>(begin + opt_.batch_size, num_rows());
  std::vector<std::span<const int32_t>> rows;
  std::vector<int32_t> masked;
  for (int64_t i = begin; i < end; ++i) {
    const size_t r = static_cast<size_t>(cached_order_[static_cast<size_t>(i)]);
    rows.emplace_back(rows_[r]);
    if (!n_masked_.empty()) masked.push_back(n_masked_[r]);
  }
  return collate(rows, opt_.pad_id, opt_.packing ? opt_.block_size : 0, masked);  // packed: always block_size long
}

TrainBatch DataLoader::next() {
  TrainBatch b = batch_at(pos_.epoch, pos_.batch);
  if (++pos_.batch == batches_per_epoch()) {
    ++pos_.epoch;
    pos_.batch = 0;
  }
  return b;
}

void DataLoader::set_position(const DataPosition& p) {
  auto mismatch = [](const std::string& what, int64_t saved, int64_t now) {
    throw Error("cannot resume the data order: the checkpoint was recorded with " + what + " " + std::to_string(saved) +
                ", this run has " + std::to_string(now));
  };
  if (p.seed != opt_.seed)
    throw Error("cannot resume the data order: the checkpoint was recorded with seed " + std::to_string(p.seed) +
                ", this run has seed " + std::to_string(opt_.seed));
  if (p.rows != num_rows()) mismatch("rows", p.rows, num_rows());
  if (p.batch_size != opt_.batch_size) mismatch("batch size", p.batch_size, opt_.batch_size);
  if (p.epoch < 0 || p.batch < 0 || p.batch >= batches_per_epoch())
    throw Error("cannot resume the data order: position epoch " + std::to_string(p.epoch) + " batch " +
                std::to_string(p.batch) + " is outside the " + std::to_string(batches_per_epoch()) + " batches per epoch");
  pos_ = p;
}

}  // namespace lmforge
