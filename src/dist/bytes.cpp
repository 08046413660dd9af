#include "lmforge/dist/bytes.h"

#include "lmforge/error.h"

namespace lmforge::dist {

void ByteWriter::put(const std::string& s) {
  put<uint64_t>(s.size());
  bytes_ += s;
}

void ByteWriter::put(const std::vector<bool>& v) {
  put<uint64_t>(v.size());
  for (bool b : v) put<uint8_t>(b ? 1 : 0);
}

const char* ByteReader::take(size_t n) {
  if (n > bytes_.size() - pos_)
    throw Error("internal: a rank's result message ends early (" + std::to_string(bytes_.size()) + " bytes)");
  const char* p = bytes_.data() + pos_;
  pos_ += n;
  return p;
}

size_t ByteReader::count(size_t element_size) {
  const auto n = get<uint64_t>();
  if (element_size && n > (bytes_.size() - pos_) / element_size)
    throw Error("internal: a rank's result message holds a length of " + std::to_string(n) + " past its end");
  return static_cast<size_t>(n);
}

std::string ByteReader::get_string() {
  const size_t n = count(1);
  return std::string(take(n), n);
}

std::vector<bool> ByteReader::get_bools() {
  std::vector<bool> v(count(1));
  for (size_t i = 0; i < v.size(); ++i) v[i] = get<uint8_t>() != 0;
  return v;
}

}  // namespace lmforge::dist
