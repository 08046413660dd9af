#include "common/fixtures.h"

#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace lmforge::test {

std::filesystem::path data_dir() { return LMFORGE_TEST_DATA; }

std::filesystem::path model_dir(const std::string& name) { return data_dir() / "models" / name; }

std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot open " + file.string());
  std::vector<nlohmann::json> out;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::vector<nlohmann::json> model_cases(const std::string& model, const std::string& kind) {
  std::vector<nlohmann::json> out;
  for (auto& c : read_jsonl(model_dir(model) / "cases.jsonl"))
    if (kind.empty() || c.at("kind") == kind) out.push_back(std::move(c));
  return out;
}

NpyArray read_npy(const std::filesystem::path& path) {
  auto full = path.is_absolute() ? path : data_dir() / path;
  std::ifstream in(full, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + full.string());
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) throw std::runtime_error("not npy: " + full.string());
  int major = static_cast<unsigned char>(bytes[6]);
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
  std::string header = bytes.substr(header_start, header_len);
  if (header.find("'<f4'") == std::string::npos) throw std::runtime_error("npy not float32: " + full.string());
  if (header.find("'fortran_order': False") == std::string::npos) throw std::runtime_error("npy fortran: " + full.string());
  NpyArray arr;
  auto lp = header.find('(', header.find("'shape'"));
  auto rp = header.find(')', lp);
  std::stringstream ss(header.substr(lp + 1, rp - lp - 1));
  std::string item;
  while (std::getline(ss, item, ','))
    if (item.find_first_not_of(' ') != std::string::npos) arr.shape.push_back(std::stoll(item));
  int64_t n = 1;
  for (auto d : arr.shape) n *= d;
  size_t off = header_start + header_len;
  if (bytes.size() != off + n * 4) throw std::runtime_error("npy size mismatch: " + full.string());
  arr.data.resize(n);
  std::memcpy(arr.data.data(), bytes.data() + off, n * 4);
  return arr;
}

std::vector<std::string> model_names(const std::string& arch) {
  std::ifstream in(data_dir() / "manifest.json");
  auto manifest = nlohmann::json::parse(in);
  std::vector<std::string> out;
  for (auto& m : manifest.at("models"))
    if (arch.empty() || m.at("arch") == arch) out.push_back(m.at("name"));
  return out;
}

}  // namespace lmforge::test
