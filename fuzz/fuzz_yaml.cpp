// The same bytes through every YAML reader: finetune's --config (parse_train_config + validate),
// synth's --model_config (load_synth_config + validate) and task templates (tasks::parse_template).
// yaml-cpp's own exceptions must come out as an lmforge::Error naming the file.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_util.h"
#include "lmforge/error.h"
#include "lmforge/synth/synth_config.h"
#include "lmforge/tasks/template.h"
#include "lmforge/train/train_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  lmforge::fuzz::refused_or_read([&] {
    lmforge::TrainConfig cfg;
    lmforge::parse_train_config(text, "config.yaml", cfg);
    lmforge::validate(cfg, false);
  });
  lmforge::fuzz::refused_or_read([&] {
    lmforge::synth::SynthConfig cfg;
    lmforge::synth::load_synth_config(lmforge::fuzz::as_file(data, size, "synth.yaml"), cfg);
    lmforge::synth::validate(cfg);
  });
  lmforge::fuzz::refused_or_read([&] { (void)lmforge::tasks::parse_template(text, "template.yaml"); });
  return 0;
}
