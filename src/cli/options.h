#pragma once
// Typed optional options: the value is set only when the user gave the flag, so that flags can
// override generation_config.json without clobbering it with our own defaults.
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

namespace lmforge::cli {

template <typename T>
CLI::Option* add_optional(CLI::App& app, const std::string& name, std::optional<T>& target, const std::string& help) {
  return app.add_option_function<T>(name, [&target](const T& v) { target = v; }, help);
}

}  // namespace lmforge::cli
