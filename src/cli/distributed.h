#pragma once
// What the commands that share their rows across mpirun ranks (generate --prompt_file, synth, task,
// eval perplexity) have in common; docs/SCALE_OUT.md.
#include <string>

#include "lmforge/dist/shard.h"
#include "lmforge/dist/world.h"

namespace lmforge::cli {

// The job's world, with every rank's --model (and --adapter) checked to be the same folder as rank
// 0's before any model work. In a world of one, the world and nothing else.
const dist::World& sharded_world(const std::string& model, const std::string& adapter = "");

// "lmforge NAME: rank R of N runs UNITS [b, e) of T" on stderr in a distributed job (nothing
// otherwise), so a log shows who did what.
void announce_shard(const dist::World& w, const std::string& command, const std::string& units, dist::Range r,
                    size_t total);

}  // namespace lmforge::cli
