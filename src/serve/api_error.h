#pragma once
// Errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}} with an HTTP status.
// Request parsing throws ApiError; the routes turn it into the response, so a bad request never
// reaches the engine and never takes the server down.
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace lmforge::serve {

struct ApiError : std::runtime_error {
  ApiError(int status, std::string message, std::string type = "invalid_request_error", std::string param = "",
           std::string code = "")
      : std::runtime_error(message), status(status), type(std::move(type)), param(std::move(param)),
        code(std::move(code)) {}
  int status;
  std::string type, param, code;  // empty param / code are sent as null, as OpenAI does

  nlohmann::json body() const {
    nlohmann::json e{{"message", what()}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
    if (!param.empty()) e["param"] = param;
    if (!code.empty()) e["code"] = code;
    return {{"error", e}};
  }
};

// A 400 naming the offending field in `param`.
inline ApiError bad_field(const std::string& field, const std::string& message) {
  return ApiError(400, message, "invalid_request_error", field);
}

}  // namespace lmforge::serve
