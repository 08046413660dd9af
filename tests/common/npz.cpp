#include "common/npz.h"

#include <zip.h>

#include <cstring>
#include <memory>
#include <sstream>
#include <stdexcept>

namespace lmforge::test {
namespace {

struct ZipClose {
  void operator()(zip_t* z) const { zip_discard(z); }  // read-only: nothing to write back
};
struct ZipFileClose {
  void operator()(zip_file_t* f) const { zip_fclose(f); }
};

std::string read_member(zip_t* z, zip_uint64_t index, const std::string& what) {
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat_index(z, index, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE))
    throw std::runtime_error("npz stat: " + what);
  std::unique_ptr<zip_file_t, ZipFileClose> f(zip_fopen_index(z, index, 0));
  if (!f) throw std::runtime_error("npz open member: " + what);
  std::string bytes(st.size, '\0');
  if (zip_fread(f.get(), bytes.data(), st.size) != static_cast<zip_int64_t>(st.size))
    throw std::runtime_error("npz read member: " + what);
  return bytes;
}

}  // namespace

NpyArray parse_npy(const std::string& bytes, const std::string& what) {
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) throw std::runtime_error("not npy: " + what);
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len, header_start;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    header_start = 10;
  } else {
    uint32_t n;
    std::memcpy(&n, bytes.data() + 8, 4);
    header_len = n;
    header_start = 12;
  }
  const std::string header = bytes.substr(header_start, header_len);
  if (header.find("'<f4'") == std::string::npos) throw std::runtime_error("npy not float32: " + what);
  if (header.find("'fortran_order': False") == std::string::npos) throw std::runtime_error("npy fortran: " + what);
  NpyArray arr;
  const auto lp = header.find('(', header.find("'shape'"));
  const auto rp = header.find(')', lp);
  std::stringstream ss(header.substr(lp + 1, rp - lp - 1));
  std::string item;
  while (std::getline(ss, item, ','))
    if (item.find_first_not_of(' ') != std::string::npos) arr.shape.push_back(std::stoll(item));
  size_t n = 1;
  for (auto d : arr.shape) n *= static_cast<size_t>(d);
  const size_t off = header_start + header_len;
  if (bytes.size() != off + n * 4) throw std::runtime_error("npy size mismatch: " + what);
  arr.data.resize(n);
  std::memcpy(arr.data.data(), bytes.data() + off, n * 4);
  return arr;
}

std::map<std::string, NpyArray> read_npz(const std::filesystem::path& path) {
  const auto full = path.is_absolute() ? path : data_dir() / path;
  int err = 0;
  std::unique_ptr<zip_t, ZipClose> z(zip_open(full.c_str(), ZIP_RDONLY, &err));
  if (!z) throw std::runtime_error("cannot open npz " + full.string());
  std::map<std::string, NpyArray> out;
  const zip_int64_t n = zip_get_num_entries(z.get(), 0);
  for (zip_int64_t i = 0; i < n; ++i) {
    std::string name = zip_get_name(z.get(), static_cast<zip_uint64_t>(i), 0);
    const std::string what = full.string() + ":" + name;
    if (name.size() > 4 && name.ends_with(".npy")) name.resize(name.size() - 4);
    out[name] = parse_npy(read_member(z.get(), static_cast<zip_uint64_t>(i), what), what);
  }
  return out;
}

}  // namespace lmforge::test
