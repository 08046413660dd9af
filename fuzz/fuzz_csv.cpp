// The same bytes through every reader of user data files:
// - finetune's CSV reader (read_text_rows: header, quoting, the text column, UTF-8 checks),
// - generate/synth's prompt files (parse_prompts) as CSV and as plain text,
// - task datasets (tasks::parse_dataset) as CSV, TSV and JSON Lines.
// Each either reads rows or refuses with an lmforge::Error naming the file.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz/fuzz_util.h"
#include "lmforge/error.h"
#include "lmforge/io/prompt_file.h"
#include "lmforge/tasks/dataset.h"
#include "lmforge/train/data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  lmforge::fuzz::refused_or_read([&] {
    lmforge::DataOptions opt;
    opt.data_path = lmforge::fuzz::as_file(data, size, "data.csv");
    opt.max_rows = 0;
    const auto rows = lmforge::read_text_rows(opt);
    if (rows.texts.size() != rows.lines.size()) __builtin_trap();
  });
  lmforge::fuzz::refused_or_read([&] { (void)lmforge::parse_prompts(text, "prompts.csv"); });
  lmforge::fuzz::refused_or_read([&] { (void)lmforge::parse_prompts(text, "prompts.txt"); });
  for (const char* source : {"data.csv", "data.tsv", "data.jsonl"})
    lmforge::fuzz::refused_or_read([&] {
      const auto d = lmforge::tasks::parse_dataset(text, source);
      for (const auto& row : d.rows)
        if (row.label != lmforge::tasks::kNoLabel && (row.label < 0 || row.label >= static_cast<int>(d.label_names.size())))
          __builtin_trap();  // a gold label outside the label names
    });
  return 0;
}
