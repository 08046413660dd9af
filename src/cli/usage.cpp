#include "cli/usage.h"

#include <algorithm>
#include <cstdint>
#include <regex>

#include "lmforge/error.h"
#include "lmforge/io/hub_cache.h"
#include "lmforge/train/train_config.h"  // edit_distance, shared with the config readers

namespace lmforge::cli {
namespace {

// The innermost subcommand the user named (CLI11 marks it parsed as soon as it is seen): `eval
// perplexity` gives perplexity. nullptr when none was named.
const CLI::App* active_subcommand(const CLI::App& app) {
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    if (sub->parsed()) {
      const CLI::App* inner = active_subcommand(*sub);
      return inner ? inner : sub;
    }
  return nullptr;
}

// "eval perplexity" for a nested subcommand, "generate" for a top-level one.
std::string full_name(const CLI::App* sub) {
  std::string name = sub->get_name();
  for (const CLI::App* p = sub->get_parent(); p && p->get_parent(); p = p->get_parent()) name = p->get_name() + " " + name;
  return name;
}

// Every long and short flag name of `sub` ("--model", "-m"), plus --help.
std::vector<std::string> flag_names(const CLI::App& sub) {
  std::vector<std::string> names{"--help"};
  for (const CLI::Option* opt : sub.get_options()) {
    for (const auto& l : opt->get_lnames()) names.push_back("--" + l);
    for (const auto& s : opt->get_snames()) names.push_back("-" + s);
  }
  return names;
}

std::string subcommand_names(const CLI::App& parent) {
  std::string names;
  for (const CLI::App* inner : parent.get_subcommands([](const CLI::App*) { return true; }))
    names += (names.empty() ? "" : ", ") + inner->get_name();
  return names;
}

// "eval: unknown subcommand 'perplexty' (did you mean 'perplexity'?)".
std::string unknown_subcommand(const CLI::App& parent, const std::string& word) {
  std::vector<std::string> names;
  for (const CLI::App* inner : parent.get_subcommands([](const CLI::App*) { return true; }))
    names.push_back(inner->get_name());
  const std::string where = parent.get_parent() ? full_name(&parent) + ": " : "";
  const std::string best = closest(word, names);
  return where + "unknown subcommand '" + word + "'" +
         (best.empty() ? " (subcommands: " + subcommand_names(parent) + ")" : " (did you mean '" + best + "'?)");
}

std::string unexpected_args(const CLI::App& app, const CLI::App* sub) {
  const std::vector<std::string> rest = sub ? sub->remaining() : app.remaining();
  const std::string where = sub ? full_name(sub) + ": " : "";
  for (const std::string& arg : rest) {
    if (arg.size() < 2 || arg[0] != '-') continue;
    const std::string name = arg.substr(0, arg.find('='));
    std::string msg = where + "unknown flag '" + name + "'";
    if (sub) {
      const std::string best = closest(name, flag_names(*sub));
      if (!best.empty()) msg += " (did you mean '" + best + "'?)";
    }
    return msg + "; see lmforge " + (sub ? full_name(sub) + " " : "") + "--help";
  }
  if (!rest.empty() && sub && !sub->get_subcommands([](const CLI::App*) { return true; }).empty())
    return unknown_subcommand(*sub, rest.front());
  if (!rest.empty())
    return where + "unexpected argument '" + rest.front() + "' (flags take the form --name value; see lmforge " +
           (sub ? full_name(sub) + " " : "") + "--help)";
  return where + "unexpected arguments";
}

}  // namespace

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string best = closest_match(word, candidates);
  // A typo, not a different word: at most a third of the word's letters (and at least 2) differ.
  const size_t allowed = std::max<size_t>(2, word.size() / 3);
  return !best.empty() && edit_distance(word, best) <= allowed ? best : std::string();
}

std::string check_subcommand(const CLI::App& app, int argc, char** argv) {
  if (argc < 2) return "";
  const std::string word = argv[1];
  if (word.empty() || word[0] == '-') return "";
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    if (sub->get_name() == word) return "";
  return unknown_subcommand(app, word);
}

std::string describe_parse_error(const CLI::App& app, const CLI::ParseError& e) {
  const CLI::App* sub = active_subcommand(app);
  const std::string where = sub ? full_name(sub) + ": " : "";
  std::string what = e.what();
  std::smatch m;
  if (dynamic_cast<const CLI::ExtrasError*>(&e)) return unexpected_args(app, sub);
  if (dynamic_cast<const CLI::RequiredError*>(&e)) {
    if (what == "A subcommand is required" || what.starts_with("Requires at least")) {
      const CLI::App& parent = sub ? *sub : app;
      const std::vector<std::string> rest = parent.remaining();
      if (!rest.empty() && !rest.front().starts_with("-")) return unknown_subcommand(parent, rest.front());
      return where + "no subcommand given (one of: " + subcommand_names(parent) + "); see lmforge " +
             (sub ? full_name(sub) + " " : "") + "--help";
    }
    // "--model,-m is required": name the long form only.
    if (std::regex_match(what, m, std::regex(R"((--?[A-Za-z0-9_\-]+)[^ ]* is required)")))
      return where + m[1].str() + " is required";
    return where + what;
  }
  // "--threads: 1 required INT missing": a flag given without its value.
  if (std::regex_match(what, m, std::regex(R"((--?[A-Za-z0-9_\-]+)[^:]*: \d+ required (\S+) missing)")))
    return where + m[1].str() + " needs a value (" + m[2].str() + ")";
  // "Could not convert: --threads = abc".
  if (std::regex_match(what, m, std::regex(R"(Could not convert: (--?[A-Za-z0-9_\-]+)[^ ]* = (.*))"))) {
    std::string type;
    if (sub)
      if (const CLI::Option* opt = sub->get_option_no_throw(m[1].str())) type = opt->get_type_name();
    return where + m[1].str() + ": '" + m[2].str() + "' is not a valid " + (type.empty() ? "value" : type);
  }
  for (char& c : what)
    if (c == '\n' || c == '\r') c = ' ';
  return where + what;
}

std::string& pending_model_error() {
  static std::string message;
  return message;
}

void add_shared_checks(CLI::App& sub) {
  // finetune's run_clm.py spellings --model_name_or_path and --tokenizer_name name models the same way.
  for (const char* name : {"--model", "dir", "--model_name_or_path", "--tokenizer_name"})
    if (CLI::Option* opt = sub.get_option_no_throw(name))
      opt->transform(CLI::Validator(
          [](std::string& v) -> std::string {
            try {
              v = resolve_model_path(v).string();
            } catch (const Error& e) {
              pending_model_error() = e.what();  // a validator may only report usage errors
            }
            return "";
          },
          ""));
  for (CLI::App* inner : sub.get_subcommands([](const CLI::App*) { return true; })) add_shared_checks(*inner);
  if (CLI::Option* opt = sub.get_option_no_throw("--threads"))
    opt->check(CLI::Validator(
        [](std::string& v) -> std::string {
          try {
            size_t used = 0;
            const long long n = std::stoll(v, &used);
            if (used == v.size() && n >= 1) return "";
          } catch (const std::exception&) {
          }
          return "must be an integer >= 1 (got '" + v + "'; leave it out to use all cores)";
        },
        "INT >= 1"));
  if (CLI::Option* opt = sub.get_option_no_throw("--seed"))
    opt->check(CLI::Validator(
        [](std::string& v) -> std::string {
          const bool digits = !v.empty() && std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; });
          if (digits && v.size() <= 19) return "";
          return "must be a non-negative integer (got '" + v + "')";
        },
        "INT >= 0"));
}

}  // namespace lmforge::cli
