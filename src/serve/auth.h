#pragma once
// --api_key: every route but /health wants "Authorization: Bearer KEY".
#include <string>

namespace lmforge::serve {

// True when `authorization` (the header's value) carries `key`. An empty key means no auth.
// Compared in constant time so response timing does not reveal how much of a guess was right.
bool authorized(const std::string& key, const std::string& authorization);

}  // namespace lmforge::serve
