#pragma once
// Helpers shared by the training tests: `train` fixture cases (tests/data/README.md) as
// TrainBatch, and per-parameter npz arrays (HF layout) in the flat layout of ModelWeights::params.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "common/fixtures.h"
#include "common/npz.h"
#include "lmforge/model/weights.h"
#include "lmforge/train/batch.h"

namespace lmforge::test {

inline TrainBatch batch_from_case(const nlohmann::json& c) {
  const auto ids = c.at("input_ids").get<std::vector<std::vector<int32_t>>>();
  const auto labels = c.at("args").at("labels").get<std::vector<std::vector<int32_t>>>();
  const auto mask = c.at("args").at("attention_mask").get<std::vector<std::vector<int>>>();
  TrainBatch b;
  b.B = static_cast<int>(ids.size());
  b.T = static_cast<int>(ids[0].size());
  for (int r = 0; r < b.B; ++r)
    for (int t = 0; t < b.T; ++t) {
      b.input_ids.push_back(ids[r][t]);
      b.labels.push_back(labels[r][t]);
      b.attention_mask.push_back(static_cast<uint8_t>(mask[r][t]));
      b.position_ids.push_back(t);  // HF 4.43 training forward: arange(T) whatever the mask
    }
  return b;
}

// Every slice's array from the npz, Conv1D [in, out] transposed to our [out, in].
inline std::vector<float> flatten_npz(const ModelWeights& w, const std::map<std::string, NpyArray>& z) {
  std::vector<float> flat(w.params.size(), NAN);
  for (const auto& s : w.slices) {
    const NpyArray& a = z.at(s.hf_name);
    EXPECT_EQ(a.shape, s.hf_shape) << s.hf_name;
    float* dst = flat.data() + s.offset;
    if (!s.transposed) {
      std::copy(a.data.begin(), a.data.end(), dst);
      continue;
    }
    const int64_t in = s.hf_shape[0], out = s.hf_shape[1];
    for (int64_t i = 0; i < in; ++i)
      for (int64_t o = 0; o < out; ++o) dst[o * in + i] = a.data[i * out + o];
  }
  return flat;
}

inline size_t slice_size(const ParamSlice& s) {
  size_t n = 1;
  for (auto d : s.hf_shape) n *= static_cast<size_t>(d);
  return n;
}

// max |got - want| over one slice, relative to max |want| of that slice.
inline double slice_rel_error(const ParamSlice& s, const std::vector<float>& got, const std::vector<float>& want) {
  double diff = 0.0, scale = 0.0;
  for (size_t i = s.offset; i < s.offset + slice_size(s); ++i) {
    diff = std::max(diff, static_cast<double>(std::fabs(got[i] - want[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(want[i])));
  }
  return scale > 0.0 ? diff / scale : diff;
}

}  // namespace lmforge::test
