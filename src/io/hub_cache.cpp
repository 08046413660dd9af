// Offline lookup of Hub model names in the local Hugging Face cache (see hub_cache.h).
#include "lmforge/io/hub_cache.h"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>

#include "lmforge/error.h"

namespace lmforge {

namespace {

namespace fs = std::filesystem;

// os.getenv: a variable set to "" is set.
std::optional<std::string> env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

// os.path.expanduser: a leading "~" (alone or before "/") becomes $HOME.
std::string expand_user(const std::string& p) {
  if (p.empty() || p[0] != '~' || (p.size() > 1 && p[1] != '/')) return p;
  const auto home = env("HOME");
  return home ? *home + p.substr(1) : p;
}

bool is_var_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// os.path.expandvars (POSIX): $NAME and ${NAME} of set variables are replaced; anything else
// (unset variables, a lone "$") stays as written.
std::string expand_vars(const std::string& p) {
  std::string out;
  for (size_t i = 0; i < p.size();) {
    if (p[i] != '$') {
      out += p[i++];
      continue;
    }
    const bool braced = i + 1 < p.size() && p[i + 1] == '{';
    size_t b = i + (braced ? 2 : 1), e = b;
    while (e < p.size() && is_var_char(p[e])) ++e;
    const bool closed = !braced || (e < p.size() && p[e] == '}');
    const auto value = e > b && closed ? env(p.substr(b, e - b).c_str()) : std::nullopt;
    const size_t end = e + (braced && closed ? 1 : 0);
    if (value) {
      out += *value;
      i = end;
    } else {
      out += p[i++];
    }
  }
  return out;
}

std::string expand(const std::string& p) { return expand_vars(expand_user(p)); }

// huggingface_hub.constants.HF_HUB_CACHE.
std::string huggingface_hub_cache() {
  const std::string xdg = env("XDG_CACHE_HOME").value_or(expand_user("~/.cache"));
  const std::string hf_home = expand(env("HF_HOME").value_or((fs::path(xdg) / "huggingface").string()));
  const std::string legacy = env("HUGGINGFACE_HUB_CACHE").value_or((fs::path(hf_home) / "hub").string());
  return expand(env("HF_HUB_CACHE").value_or(legacy));
}

// huggingface_hub's validate_repo_id: one optional "ORG/", names of word characters, '-' and '.',
// at most 96 characters each, no "--" or "..", not starting or ending with '-' or '.'.
bool is_repo_id(const std::string& id) {
  if (id.find("--") != std::string::npos || id.find("..") != std::string::npos) return false;
  const size_t slash = id.find('/');
  auto part_ok = [](const std::string& s) {
    if (s.empty() || s.size() > 96) return false;
    for (char c : s)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') return false;
    return s.front() != '-' && s.front() != '.' && s.back() != '-' && s.back() != '.';
  };
  if (slash == std::string::npos) return part_ok(id);
  return id.find('/', slash + 1) == std::string::npos && part_ok(id.substr(0, slash)) && part_ok(id.substr(slash + 1));
}

std::string read_ref(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  // HF writes the hash without a newline; one added by hand is not part of it.
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  return s;
}

[[noreturn]] void not_cached(const std::string& name, const fs::path& cache, const std::string& why) {
  throw Error("model '" + name + "' is not a folder, and not in the Hugging Face cache " + cache.string() + " (" +
              why + "); nothing is downloaded: fetch it with `huggingface-cli download " +
              name.substr(0, name.find('@')) + "` or give the model's folder");
}

}  // namespace

std::filesystem::path hub_cache_dir() {
  for (const char* var : {"TRANSFORMERS_CACHE", "PYTORCH_TRANSFORMERS_CACHE", "PYTORCH_PRETRAINED_BERT_CACHE"})
    if (auto v = env(var)) return *v;
  return huggingface_hub_cache();
}

std::filesystem::path resolve_model_path(const std::string& name) {
  std::error_code ec;
  if (fs::is_directory(name, ec)) return name;
  const size_t at = name.find('@');
  const std::string repo = name.substr(0, at);
  const std::string revision = at == std::string::npos ? "main" : name.substr(at + 1);
  if (!is_repo_id(repo) || revision.empty())
    throw Error("model '" + name + "': no such folder (and not a Hugging Face model name such as gpt2 or "
                "EleutherAI/gpt-j-6b)");

  const fs::path cache = hub_cache_dir();
  std::string folder = "models--" + repo;
  if (const size_t slash = folder.find('/'); slash != std::string::npos) folder.replace(slash, 1, "--");
  const fs::path repo_dir = cache / folder;
  if (!fs::is_directory(repo_dir, ec)) not_cached(name, cache, "no folder " + folder);

  // try_to_load_from_cache: refs/<revision> names the commit; without one the revision is the commit.
  const fs::path ref = repo_dir / "refs" / revision;
  const std::string commit = fs::is_regular_file(ref, ec) ? read_ref(ref) : revision;
  const fs::path snapshot = repo_dir / "snapshots" / commit;
  if (commit.empty() || !fs::is_directory(snapshot, ec))
    not_cached(name, cache,
               fs::is_regular_file(ref, ec) ? "refs/" + revision + " names " + commit + ", which has no snapshots/ folder"
                                            : "no refs/" + revision + " and no snapshot " + revision);
  return snapshot;
}

}  // namespace lmforge
