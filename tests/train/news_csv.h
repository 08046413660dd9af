#pragma once
// A small headline-like CSV with a repetitive structure a tiny model learns quickly, shared by the
// fine-tuning tests (in process and through the binary).
#include <filesystem>
#include <fstream>
#include <string>

namespace lmforge::test {

inline std::filesystem::path write_news_csv(const std::filesystem::path& dir, int rows,
                                            const std::string& column = "headline_text") {
  const char* subjects[] = {"farmers", "council", "police", "school", "minister", "court"};
  const char* verbs[] = {"plan", "warn", "seek", "back", "reject", "win"};
  const char* objects[] = {"water rules", "new road", "rain relief", "budget cuts", "fire review", "market deal"};
  std::ofstream out(dir / "news.csv");
  out << "publish_date," << column << "\n";
  for (int i = 0; i < rows; ++i)
    out << 20200101 + i << "," << subjects[i % 6] << " " << verbs[(i / 6) % 6] << " " << objects[(i / 36) % 6] << "\n";
  return dir / "news.csv";
}

}  // namespace lmforge::test
