#include <algorithm>
#include <numeric>

#include "lmforge/structured/vocabulary.h"

namespace lmforge::structured {

TokenTrie::TokenTrie(const std::vector<std::string>& bytes) {
  // Tokens sorted by their bytes: each node's subtree is a contiguous run, so the trie is built
  // level by level with every node's children contiguous (a cache-friendly walk, no pointers).
  std::vector<int32_t> order;
  for (int32_t id = 0; id < static_cast<int32_t>(bytes.size()); ++id)
    if (!bytes[id].empty()) order.push_back(id);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return bytes[a] < bytes[b]; });

  struct Pending {
    uint32_t node;
    size_t begin, end, depth;  // tokens order[begin, end) share the node's prefix of `depth` bytes
  };
  nodes_.push_back({});
  std::vector<Pending> level{{0, 0, order.size(), 0}}, next;
  while (!level.empty()) {
    next.clear();
    for (const Pending& p : level) {
      size_t i = p.begin;
      // Tokens whose bytes end exactly here come first in sorted order.
      nodes_[p.node].first_token = static_cast<uint32_t>(token_ids_.size());
      for (; i < p.end && bytes[order[i]].size() == p.depth; ++i) token_ids_.push_back(order[i]);
      nodes_[p.node].token_count = static_cast<uint32_t>(token_ids_.size()) - nodes_[p.node].first_token;
      nodes_[p.node].first_child = static_cast<uint32_t>(nodes_.size());
      while (i < p.end) {
        const auto b = static_cast<uint8_t>(bytes[order[i]][p.depth]);
        size_t j = i;
        while (j < p.end && static_cast<uint8_t>(bytes[order[j]][p.depth]) == b) ++j;
        Node child;
        child.byte = b;
        next.push_back({static_cast<uint32_t>(nodes_.size()), i, j, p.depth + 1});
        nodes_.push_back(child);
        i = j;
      }
      nodes_[p.node].child_count = static_cast<uint32_t>(nodes_.size()) - nodes_[p.node].first_child;
    }
    std::swap(level, next);
  }
}

void TokenTrie::allowed(Matcher& m, StateId s, std::vector<uint64_t>& mask) const {
  // Depth-first with an explicit stack of (node, state after its prefix); a dead state prunes the
  // whole subtree: no token below it can be allowed.
  std::vector<std::pair<uint32_t, StateId>> todo{{0, s}};
  while (!todo.empty()) {
    const auto [n, state] = todo.back();
    todo.pop_back();
    const Node& node = nodes_[n];
    if (n != 0)
      for (uint32_t t = node.first_token; t < node.first_token + node.token_count; ++t)
        mask[token_ids_[t] >> 6] |= uint64_t{1} << (token_ids_[t] & 63);
    for (uint32_t c = node.first_child; c < node.first_child + node.child_count; ++c) {
      const StateId next = m.advance(state, nodes_[c].byte);
      if (next != Matcher::kDead) todo.emplace_back(c, next);
    }
  }
}

}  // namespace lmforge::structured
