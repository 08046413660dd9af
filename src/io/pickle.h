#pragma once
// A restricted reader for the pickle that torch.save writes as `<archive>/data.pkl`. It is not a
// Python VM: it understands the opcodes torch emits (protocol 2, plus a few of 3-5 that are
// harmless), knows a fixed allow-list of globals (tensor rebuild functions, OrderedDict,
// torch.*Storage) and refuses anything else. Nothing in the file can cause code to run.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "lmforge/io/tensor.h"

namespace lmforge::io {

// One entry of the state dict: a strided view of a storage that lives in `<archive>/data/<key>`.
struct PickledTensor {
  std::string name;
  std::string storage_key;
  DType dtype = DType::F32;    // from the storage type, e.g. torch.HalfStorage -> F16
  uint64_t storage_numel = 0;  // elements in the storage, as recorded in the persistent id
  uint64_t offset = 0;         // storage offset, in elements
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides;  // in elements
};

// Evaluates `bytes` and returns the top-level dict's tensors, in the dict's order (a key set
// twice keeps its last value, as in Python). Throws lmforge::Error("<where>: ...") on anything
// else: disallowed globals, unknown opcodes, malformed structure, truncation.
std::vector<PickledTensor> parse_torch_pickle(std::span<const std::byte> bytes, const std::string& where);

}  // namespace lmforge::io
