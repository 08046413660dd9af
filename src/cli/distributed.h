#pragma once
// What the commands that share their rows across mpirun ranks (generate --prompt_file, synth, task,
// eval perplexity) have in common; docs/SCALE_OUT.md.
#include <optional>
#include <string>
#include <vector>

#include "lmforge/dist/shard.h"
#include "lmforge/dist/world.h"
#include "lmforge/eval/perplexity.h"

namespace lmforge {
class Model;
class Tokenizer;
}  // namespace lmforge

namespace lmforge::cli {

// The job's world, with every rank's --model (and --adapter) checked to be the same folder as rank
// 0's before any model work. In a world of one, the world and nothing else.
const dist::World& sharded_world(const std::string& model, const std::string& adapter = "");

// "lmforge NAME: rank R of N runs UNITS [b, e) of T" on stderr in a distributed job (nothing
// otherwise), so a log shows who did what.
void announce_shard(const dist::World& w, const std::string& command, const std::string& units, dist::Range r,
                    size_t total);

// Each rank scores its share of `texts` (eval::row_perplexity); rank 0 gets every row's result in
// row order and sums them as one process does (so the corpus figures are the same bits); the other
// ranks get nothing. `announce_as` names the command in the announce_shard line (empty: silent).
std::optional<eval::CorpusPerplexity> sharded_corpus(const dist::World& w, const Model& model, const Tokenizer& tok,
                                                     const std::vector<std::string>& texts,
                                                     const eval::PerplexityOptions& opt, const eval::TextFormat& format,
                                                     const std::string& announce_as);

// Rank 0's `value` on every rank (the others' own is ignored), so that ranks taking decisions from a
// figure only rank 0 computed take the same ones. `value` itself in a world of one.
double share_root_value(const dist::World& w, double value, const std::string& what);

}  // namespace lmforge::cli
