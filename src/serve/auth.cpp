#include "serve/auth.h"

namespace lmforge::serve {

bool authorized(const std::string& key, const std::string& authorization) {
  if (key.empty()) return true;
  static const std::string kPrefix = "Bearer ";
  if (authorization.compare(0, kPrefix.size(), kPrefix) != 0) return false;
  const std::string given = authorization.substr(kPrefix.size());
  unsigned diff = given.size() != key.size();
  for (size_t i = 0; i < key.size(); ++i) diff |= static_cast<unsigned char>(key[i]) ^ (i < given.size() ? static_cast<unsigned char>(given[i]) : 0u);
  return diff == 0;
}

}  // namespace lmforge::serve
