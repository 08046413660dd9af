#include "cli/distributed.h"

#include <iostream>

#include "lmforge/dist/same_model.h"

namespace lmforge::cli {

const dist::World& sharded_world(const std::string& model, const std::string& adapter) {
  const dist::World& w = dist::world();
  if (!model.empty()) dist::check_same_model(w, "--model", model);
  if (!adapter.empty()) dist::check_same_model(w, "--adapter", adapter);
  return w;
}

void announce_shard(const dist::World& w, const std::string& command, const std::string& units, dist::Range r,
                    size_t total) {
  if (!w.distributed()) return;
  std::cerr << "lmforge " << command << ": rank " << w.rank() << " of " << w.size() << " runs " << units << " ["
            << r.begin << ", " << r.end << ") of " << total << (r.empty() ? " (idle: more ranks than " + units + ")" : "")
            << "\n";
}

}  // namespace lmforge::cli
