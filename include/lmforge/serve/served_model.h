#pragma once
// One model the server answers for: the loaded weights, its tokenizer and the generation defaults
// of its folder (generation_config.json), under the name requests use in "model".
#include <memory>
#include <string>

#include "lmforge/generate/generation_config.h"
#include "lmforge/model/model.h"
#include "lmforge/tokenizer/tokenizer.h"

namespace lmforge::serve {

struct ServedModel {
  std::string name;
  std::unique_ptr<Model> model;
  Tokenizer tokenizer;
  GenerationConfig defaults;  // generation_defaults() of the folder; requests override it
  int64_t created = 0;        // unix time the server loaded it (/v1/models "created")
};

}  // namespace lmforge::serve
