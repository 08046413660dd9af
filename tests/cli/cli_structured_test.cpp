// lmforge generate --regex / --json_schema / --grammar / --json_object end to end on the tiny
// checkpoint, greedy, sampling and beam search. The model's text is checked by property (std::regex,
// a JSON parser and a hand-written check of the schema), never against output of our own code.
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>

#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "common/run.h"
#include "lmforge/tokenizer/tokenizer.h"

namespace lmforge {
namespace {

constexpr int32_t kEos = 50256;
const char* const kModes[] = {"", " --do_sample --seed 7 --num_return_sequences 3",
                              " --num_beams 3 --num_return_sequences 3"};

std::string model() { return test::model_dir("gpt2-tiny").string(); }

const Tokenizer& tokenizer() {
  static const Tokenizer tok = Tokenizer::from_dir(test::model_dir("gpt2-tiny"));
  return tok;
}

// The generated text of each sequence, which must have ended with eos (complete, not cut).
std::vector<std::string> continuations(const std::string& flags, const std::string& prompt) {
  const auto r = test::run_cli("generate --json --model " + model() + " -p '" + prompt + "' " + flags);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return {};
  const size_t prompt_len = tokenizer().encode(prompt).size();
  std::vector<std::string> out;
  const auto printed = nlohmann::json::parse(r.out);
  for (const auto& ids : printed.at(0).at("ids")) {
    std::vector<int32_t> gen(ids.begin() + prompt_len, ids.end());
    const auto eos = std::find(gen.begin(), gen.end(), kEos);
    EXPECT_NE(eos, gen.end()) << "sequence cut before it was complete (" << flags << ")";
    out.push_back(tokenizer().decode(std::vector<int32_t>(gen.begin(), eos)));
  }
  return out;
}

TEST(CliStructured, RegexHoldsForGreedySamplingAndBeams) {
  const std::string pattern = R"((yes|no), because [a-z ]{3,20}\.)";
  for (const char* mode : kModes) {
    const auto texts = continuations("--regex '" + pattern + "' --max_new_tokens 40" + mode, "The answer:");
    ASSERT_FALSE(texts.empty()) << mode;
    for (const auto& t : texts) EXPECT_TRUE(std::regex_match(t, std::regex(pattern))) << "'" << t << "'" << mode;
  }
}

// The schema of the test, checked by hand: required answer/count/ok, optional tags, nothing else.
void expect_valid(const nlohmann::json& j, const std::string& text) {
  ASSERT_TRUE(j.is_object()) << text;
  for (const auto& [k, v] : j.items()) EXPECT_TRUE(k == "answer" || k == "count" || k == "ok" || k == "tags") << text;
  ASSERT_TRUE(j.contains("answer") && j.contains("count") && j.contains("ok")) << text;
  EXPECT_TRUE(j["answer"] == "yes" || j["answer"] == "no") << text;
  EXPECT_TRUE(j["count"].is_number_integer()) << text;
  EXPECT_TRUE(j["ok"].is_boolean()) << text;
  if (!j.contains("tags")) return;
  ASSERT_TRUE(j["tags"].is_array()) << text;
  EXPECT_LE(j["tags"].size(), 3u) << text;
  for (const auto& t : j["tags"]) EXPECT_TRUE(t == "a" || t == "b" || t == "c") << text;
}

class TempFile {
 public:
  TempFile(const std::string& name, const std::string& text)
      : path_(std::filesystem::temp_directory_path() / ("lmforge_structured_" + std::to_string(::getpid()) + name)) {
    std::ofstream(path_) << text;
  }
  ~TempFile() { std::filesystem::remove(path_); }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

TEST(CliStructured, JsonSchemaOutputParsesAndValidates) {
  TempFile schema("schema.json", R"({"type": "object", "properties": {"answer": {"enum": ["yes", "no"]},
      "count": {"type": "integer"}, "ok": {"type": "boolean"},
      "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3}},
      "required": ["answer", "count", "ok"]})");
  for (const char* mode : kModes) {
    const auto texts = continuations("--json_schema " + schema.str() + " --max_new_tokens 100" + mode, "Reply:");
    ASSERT_FALSE(texts.empty()) << mode;
    for (const auto& t : texts) {
      nlohmann::json j;
      ASSERT_NO_THROW(j = nlohmann::json::parse(t)) << "'" << t << "'" << mode;
      expect_valid(j, t);
    }
  }
}

TEST(CliStructured, GrammarFile) {
  TempFile grammar("g.gbnf", "root ::= \"[\" item (\", \" item){1,2} \"]\"\nitem ::= [0-9] | \"x\"\n");
  for (const auto& t : continuations("--grammar " + grammar.str() + " --max_new_tokens 20", "List:"))
    EXPECT_TRUE(std::regex_match(t, std::regex(R"(\[[0-9x](, [0-9x]){1,2}\])"))) << t;
}

// One error line naming the flag, and a non-zero exit.
void expect_error(const std::string& flags, const std::string& message) {
  const auto r = test::run_cli("generate --model " + model() + " -p x " + flags);
  EXPECT_NE(r.exit_code, 0) << flags;
  EXPECT_EQ(r.err, "error: " + message + "\n") << flags;
}

TEST(CliStructured, BadInputIsOneErrorLine) {
  expect_error("--regex 'a('", "--regex: expected ')' to close the group at line 1, column 3");
  expect_error("--regex a --json_object", "--regex and --json_object cannot be combined: give one structured-output flag");
  expect_error("--json_schema /nonexistent.json", "--json_schema: cannot read '/nonexistent.json'");
  TempFile bad("bad.json", R"({"type": "object", "properties": {"a": {"type": "integer", "minimum": 1}}})");
  expect_error("--json_schema " + bad.str(), "--json_schema " + bad.str() + ": unsupported key 'minimum' at #/properties/a");
  TempFile not_json("nj.json", "{type: object}");
  const auto r = test::run_cli("generate --model " + model() + " -p x --json_schema " + not_json.str());
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(r.err.rfind("error: --json_schema " + not_json.str() + ": not valid JSON", 0), 0u) << r.err;
  TempFile undefined("u.gbnf", "root ::= item\n");
  expect_error("--grammar " + undefined.str(), "--grammar " + undefined.str() + ": rule 'item' is used but never defined");
  expect_error("--regex a --benchmark_mode --benchmark_seq_length 2",
               "--regex cannot be combined with --benchmark_mode (it times a fixed number of tokens)");
}

}  // namespace
}  // namespace lmforge
