#pragma once
// Reader for numpy .npz archives (numpy.savez / savez_compressed: a zip of .npy members), as used
// by the training fixtures (tests/data/README.md, `train`).
#include <filesystem>
#include <map>
#include <string>

#include "common/fixtures.h"

namespace lmforge::test {

// Every float32 array of the archive, keyed by member name without ".npy". `path` may be relative
// to data_dir(). Throws std::runtime_error on unreadable archives or non-float32 members.
std::map<std::string, NpyArray> read_npz(const std::filesystem::path& path);

// One .npy file's bytes (little-endian float32, C order) parsed; `what` names it in errors.
NpyArray parse_npy(const std::string& bytes, const std::string& what);

}  // namespace lmforge::test
