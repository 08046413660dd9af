#pragma once
// The byte form of a rank's results on their way to rank 0. Ranks run the same binary on machines
// of one architecture (docs/SCALE_OUT.md), so numbers travel in native byte order, exactly: a
// double arrives bit for bit, which text formats would not promise and JSON would refuse for
// strings that are not valid UTF-8 (a decoded partial character).
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace lmforge::dist {

class ByteWriter {
 public:
  template <typename T>
  void put(T v) {
    static_assert(std::is_arithmetic_v<T>);
    bytes_.append(reinterpret_cast<const char*>(&v), sizeof v);
  }
  void put(const std::string& s);
  template <typename T>
  void put(const std::vector<T>& v) {
    put<uint64_t>(v.size());
    for (const T& x : v) put(x);
  }
  void put(const std::vector<bool>& v);
  const std::string& bytes() const { return bytes_; }

 private:
  std::string bytes_;
};

// Reads what a ByteWriter wrote, in the same order; lmforge::Error when the bytes run out (a
// message that is not what this build sends).
class ByteReader {
 public:
  explicit ByteReader(std::string_view bytes) : bytes_(bytes) {}
  template <typename T>
  T get() {
    static_assert(std::is_arithmetic_v<T>);
    T v;
    std::memcpy(&v, take(sizeof v), sizeof v);
    return v;
  }
  std::string get_string();
  template <typename T>
  std::vector<T> get_vector() {
    std::vector<T> v(count(sizeof(T)));
    for (T& x : v) x = get<T>();
    return v;
  }
  std::vector<bool> get_bools();
  bool done() const { return pos_ == bytes_.size(); }

 private:
  const char* take(size_t n);
  size_t count(size_t element_size);  // a length prefix, checked against the bytes left
  std::string_view bytes_;
  size_t pos_ = 0;
};

}  // namespace lmforge::dist
