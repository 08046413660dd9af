#pragma once
// Command-line usage errors, turned into one line a user can act on, and the checks every
// subcommand's shared flags get. Exit-code rule (README, `lmforge --help`): usage errors 2,
// everything else 1.
#include <string>

#include <CLI/CLI.hpp>

namespace lmforge::cli {

inline constexpr int kExitUsage = 2;
inline constexpr int kExitFailure = 1;

// The subcommand names closest to `word` by edit distance, for "did you mean": the best one when it
// is close enough to be a plausible typo, else "".
std::string closest(const std::string& word, const std::vector<std::string>& candidates);

// An unknown subcommand in argv[1] (not a flag): the one-line message, else "" (argv is fine so far).
std::string check_subcommand(const CLI::App& app, int argc, char** argv);

// One line for a CLI11 parse error, naming the subcommand, the flag and, for a mistyped flag, the
// closest valid one: "generate: unknown flag '--max_new_token' (did you mean '--max_new_tokens'?)".
std::string describe_parse_error(const CLI::App& app, const CLI::ParseError& e);

// --threads must be >= 1 and --seed a non-negative integer, on every subcommand that has them
// (given flags only: leaving --threads out still means all cores).
// --model (and inspect's DIR, finetune's --model_name_or_path and --tokenizer_name) also take a model
// name from the local Hugging Face cache (resolve_model_path): the value is replaced by the snapshot
// folder while parsing.
void add_shared_checks(CLI::App& sub);

// The error of a --model that is neither a folder nor cached, found while parsing, or "". It is not
// a usage error (exit 1), so main() reports it after parsing succeeded.
std::string& pending_model_error();

}  // namespace lmforge::cli
