#pragma once
// The one place allowed to fill a Checkpoint's private members (it is a friend of Checkpoint).
// Each reader collects views plus the owners of the memory they point into, then hands over.
#include <memory>
#include <string>
#include <utility>

#include "io/io_util.h"
#include "lmforge/io/checkpoint.h"

namespace lmforge {

struct CheckpointBuilder {
  Checkpoint ck;

  // Adds a view; a second tensor of the same name is an error naming `where` (a file).
  void add(const std::string& where, const std::string& name, TensorView view) {
    if (!ck.tensors_.emplace(name, std::move(view)).second)
      io::fail(where, "duplicate tensor '" + io::printable(name) + "'");
  }
  void own(std::shared_ptr<const void> owner) { ck.owners_.push_back(std::move(owner)); }
  // A file mapping: owned, and remembered as releasable (Checkpoint::release).
  void own_mapping(std::shared_ptr<const io::MappedFile> map) {
    if (map->size() > 0) ck.mapped_.push_back({map->data(), map->size()});
    ck.owners_.push_back(std::move(map));
  }
  // Takes over the memory owners of another checkpoint (a shard) so its views stay valid.
  void own_all(const Checkpoint& other) {
    ck.owners_.insert(ck.owners_.end(), other.owners_.begin(), other.owners_.end());
    ck.mapped_.insert(ck.mapped_.end(), other.mapped_.begin(), other.mapped_.end());
  }
  void describe(std::string d) { ck.description_ = std::move(d); }
  Checkpoint take() { return std::move(ck); }
};

}  // namespace lmforge
