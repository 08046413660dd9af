#include "io/io_util.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <new>
#include <sstream>

namespace lmforge::io {

std::string printable(std::string_view s, size_t max_len) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (out.size() >= max_len) {
      out += "...";
      break;
    }
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

void fail(const std::string& where, const std::string& what) { throw Error(where + ": " + what); }

std::string short_name(const std::filesystem::path& file) {
  auto parent = file.parent_path().filename().string();
  return parent.empty() ? file.filename().string() : parent + "/" + file.filename().string();
}

bool checked_numel(const std::vector<int64_t>& shape, uint64_t* out) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || !mul_ok(n, static_cast<uint64_t>(d), &n)) return false;
  }
  *out = n;
  return true;
}

// ---- MappedFile ------------------------------------------------------------------------------

namespace {
// Closes a descriptor on every exit path of MappedFile::open.
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};
}  // namespace

std::shared_ptr<const MappedFile> MappedFile::open(const std::filesystem::path& file) {
  const std::string where = file.string();
  FdGuard fd{::open(file.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) {
    if (errno == ENOENT) fail(where, "file not found");
    fail(where, std::string("cannot open: ") + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd.fd, &st) != 0) fail(where, std::string("cannot stat: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(where, "not a regular file");
  std::shared_ptr<MappedFile> m(new MappedFile());
  m->size_ = static_cast<size_t>(st.st_size);
  if (m->size_ == 0) return m;  // nothing to map; callers reject it as too short
  void* p = ::mmap(nullptr, m->size_, PROT_READ, MAP_PRIVATE, fd.fd, 0);
  if (p == MAP_FAILED) fail(where, std::string("cannot mmap: ") + std::strerror(errno));
  m->data_ = static_cast<const std::byte*>(p);
  return m;  // the mapping stays valid after the descriptor is closed
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
}

// ---- AlignedBuffer ---------------------------------------------------------------------------

namespace {
constexpr std::align_val_t kAlign{64};
}

std::shared_ptr<AlignedBuffer> AlignedBuffer::allocate(size_t nbytes, const std::string& where) {
  std::shared_ptr<AlignedBuffer> b(new AlignedBuffer());
  // Sizes come from untrusted headers; turn allocation failure into a user-facing error.
  b->data_ = static_cast<std::byte*>(::operator new(nbytes == 0 ? 1 : nbytes, kAlign, std::nothrow));
  if (b->data_ == nullptr) fail(where, "cannot allocate " + std::to_string(nbytes) + " bytes");
  b->size_ = nbytes;
  return b;
}

AlignedBuffer::~AlignedBuffer() {
  if (data_ != nullptr) ::operator delete(data_, kAlign);
}

std::string read_text_file(const std::filesystem::path& file, const std::string& what) {
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) fail(file.string(), what + " not found");
  if (std::filesystem::is_directory(file, ec)) fail(file.string(), what + " is a directory, expected a file");
  std::ifstream in(file, std::ios::binary);
  if (!in) fail(file.string(), "cannot open " + what);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail(file.string(), "cannot read " + what);
  return ss.str();
}

}  // namespace lmforge::io
