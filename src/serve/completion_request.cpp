#include "serve/completion_request.h"

#include <cmath>
#include <string>

#include "lmforge/error.h"
#include "lmforge/structured/constraint.h"
#include "lmforge/tokenizer/tokenizer.h"
#include "serve/api_error.h"

namespace lmforge::serve {
namespace {

using nlohmann::json;

// Each reader returns nullopt when the field is absent or null (OpenAI treats null as "default").
const json* field(const json& body, const char* key) {
  auto it = body.find(key);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

std::optional<int64_t> int_field(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) throw bad_field(key, std::string("'") + key + "' must be an integer, got " + v->dump());
  return v->get<int64_t>();
}

std::optional<double> number_field(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) throw bad_field(key, std::string("'") + key + "' must be a number, got " + v->dump());
  return v->get<double>();
}

std::optional<bool> bool_field(const json& body, const char* key) {
  const json* v = field(body, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) throw bad_field(key, std::string("'") + key + "' must be a boolean, got " + v->dump());
  return v->get<bool>();
}

void check_range(const char* key, double v, double lo, double hi) {
  if (!(v >= lo && v <= hi))
    throw bad_field(key, std::string("'") + key + "' must be between " + json(lo).dump() + " and " + json(hi).dump() +
                             ", got " + json(v).dump());
}

int int_in(const json& body, const char* key, int fallback, int lo, int hi) {
  const auto v = int_field(body, key);
  if (!v) return fallback;
  check_range(key, static_cast<double>(*v), lo, hi);
  return static_cast<int>(*v);
}

bool is_token_array(const json& v) {
  if (!v.is_array() || v.empty()) return false;
  for (const json& x : v)
    if (!x.is_number_integer()) return false;
  return true;
}

std::vector<int32_t> token_list(const json& v, int vocab, const std::string& field_name) {
  std::vector<int32_t> ids;
  for (const json& x : v) {
    const int64_t id = x.get<int64_t>();
    if (id < 0 || id >= vocab)
      throw bad_field(field_name, "token id " + std::to_string(id) + " is outside the vocabulary [0, " +
                                      std::to_string(vocab) + ")");
    ids.push_back(static_cast<int32_t>(id));
  }
  return ids;
}

std::vector<int32_t> encode(const Tokenizer& tok, const std::string& text, const std::string& field_name) {
  try {
    return tok.encode(text);
  } catch (const Error& e) {
    throw bad_field(field_name, e.what());  // e.g. invalid UTF-8
  }
}

std::vector<std::string> parse_stop(const json& body) {
  const json* v = field(body, "stop");
  if (!v) return {};
  std::vector<std::string> stop;
  if (v->is_string()) {
    stop.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    for (const json& s : *v) {
      if (!s.is_string()) throw bad_field("stop", "'stop' must be a string or an array of strings");
      stop.push_back(s.get<std::string>());
    }
  } else {
    throw bad_field("stop", "'stop' must be a string or an array of strings");
  }
  if (stop.size() > static_cast<size_t>(kMaxStops))
    throw bad_field("stop", "'stop' takes at most " + std::to_string(kMaxStops) + " strings");
  for (const std::string& s : stop)
    if (s.empty()) throw bad_field("stop", "'stop' strings must not be empty");
  return stop;
}

std::vector<std::pair<int32_t, float>> parse_logit_bias(const json& body, int vocab) {
  const json* v = field(body, "logit_bias");
  if (!v) return {};
  if (!v->is_object()) throw bad_field("logit_bias", "'logit_bias' must be an object mapping token ids to biases");
  std::vector<std::pair<int32_t, float>> out;
  for (const auto& [key, bias] : v->items()) {
    size_t used = 0;
    long long id = -1;
    try {
      id = std::stoll(key, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != key.size() || id < 0 || id >= vocab)
      throw bad_field("logit_bias", "'logit_bias' key '" + key + "' is not a token id of this model");
    if (!bias.is_number()) throw bad_field("logit_bias", "'logit_bias' values must be numbers");
    check_range("logit_bias", bias.get<double>(), -100, 100);
    out.emplace_back(static_cast<int32_t>(id), bias.get<float>());
  }
  return out;
}

std::optional<EarlyStopping> parse_early_stopping(const json& body) {
  const json* v = field(body, "early_stopping");
  if (!v) return std::nullopt;
  if (v->is_boolean()) return v->get<bool>() ? EarlyStopping::True : EarlyStopping::False;
  if (v->is_string() && v->get<std::string>() == "never") return EarlyStopping::Never;
  throw bad_field("early_stopping", "'early_stopping' must be true, false or \"never\"");
}

void parse_sampling(const json& body, CompletionRequest& r) {
  if (auto t = number_field(body, "temperature")) {
    check_range("temperature", *t, 0, 2);
    r.temperature = static_cast<float>(*t);
  }
  if (auto p = number_field(body, "top_p")) {
    check_range("top_p", *p, 0, 1);
    if (*p == 0) throw bad_field("top_p", "'top_p' must be greater than 0");
    r.top_p = static_cast<float>(*p);
  }
  if (auto p = number_field(body, "presence_penalty")) {
    check_range("presence_penalty", *p, -2, 2);
    r.presence_penalty = static_cast<float>(*p);
  }
  if (auto p = number_field(body, "frequency_penalty")) {
    check_range("frequency_penalty", *p, -2, 2);
    r.frequency_penalty = static_cast<float>(*p);
  }
  if (auto s = int_field(body, "seed")) r.seed = static_cast<uint64_t>(*s);
  if (auto k = int_field(body, "top_k")) {
    check_range("top_k", static_cast<double>(*k), 0, 1e9);
    r.top_k = static_cast<int>(*k);
  }
  if (auto p = number_field(body, "repetition_penalty")) {
    if (!(*p > 0)) throw bad_field("repetition_penalty", "'repetition_penalty' must be greater than 0");
    r.repetition_penalty = static_cast<float>(*p);
  }
  if (auto n = int_field(body, "no_repeat_ngram_size")) {
    check_range("no_repeat_ngram_size", static_cast<double>(*n), 0, 1e6);
    r.no_repeat_ngram_size = static_cast<int>(*n);
  }
}

void parse_beams(const json& body, CompletionRequest& r) {
  if (auto b = int_field(body, "num_beams")) {
    check_range("num_beams", static_cast<double>(*b), 1, kMaxChoices);
    r.num_beams = static_cast<int>(*b);
  }
  r.use_beam_search = bool_field(body, "use_beam_search").value_or(false);
  if (auto l = number_field(body, "length_penalty")) r.length_penalty = static_cast<float>(*l);
  r.early_stopping = parse_early_stopping(body);
}

// ---- Structured output ----

struct StructuredField {
  std::string param;  // the field named in errors
  structured::ConstraintSpec spec;
};

// The schema's text with its keys in the order the client wrote them. nlohmann::json sorts object
// keys, but a schema's property order is the order of the keys it generates (OpenAI's strict mode),
// so the schema is read again from the raw body with an order-keeping parse.
std::string schema_in_source_order(const json& schema, const std::string& raw_body) {
  if (raw_body.empty()) return schema.dump();
  const auto body = nlohmann::ordered_json::parse(raw_body, nullptr, false);
  const nlohmann::ordered_json* at = &body;
  for (const char* key : {"response_format", "json_schema", "schema"}) {
    if (!at->is_object() || !at->contains(key)) return schema.dump();
    at = &(*at)[key];
  }
  return at->dump();
}

std::optional<StructuredField> parse_response_format(const json& body, const std::string& raw_body) {
  const json* f = field(body, "response_format");
  if (!f) return std::nullopt;
  const char* p = "response_format";
  if (!f->is_object() || !f->contains("type") || !(*f)["type"].is_string())
    throw bad_field(p, "'response_format' must be an object with a string 'type' (text, json_object or json_schema)");
  const std::string type = (*f)["type"].get<std::string>();
  if (type == "text") return std::nullopt;
  if (type == "json_object") return StructuredField{p, {structured::ConstraintKind::JsonObject, ""}};
  if (type != "json_schema")
    throw bad_field(p, "'response_format.type' must be text, json_object or json_schema, got " + (*f)["type"].dump());
  const json* js = field(*f, "json_schema");
  if (!js || !js->is_object()) throw bad_field(p, "Missing required parameter: 'response_format.json_schema'");
  if (const json* name = field(*js, "name"); !name || !name->is_string())
    throw bad_field(p, "'response_format.json_schema.name' must be a string");
  if (const json* strict = field(*js, "strict"); strict && !strict->is_boolean())
    throw bad_field(p, "'response_format.json_schema.strict' must be a boolean");
  const json* schema = field(*js, "schema");
  if (!schema || !schema->is_object()) throw bad_field(p, "'response_format.json_schema.schema' must be a JSON Schema object");
  return StructuredField{p, {structured::ConstraintKind::JsonSchema, schema_in_source_order(*schema, raw_body)}};
}

// The one structured-output field of the request, if any: response_format, regex or grammar.
std::optional<StructuredField> parse_structured_field(const json& body, const std::string& raw_body) {
  std::vector<StructuredField> given;
  if (auto rf = parse_response_format(body, raw_body)) given.push_back(*rf);
  for (const char* key : {"regex", "grammar"}) {
    const json* v = field(body, key);
    if (!v) continue;
    if (!v->is_string()) throw bad_field(key, std::string("'") + key + "' must be a string");
    const auto kind = std::string(key) == "regex" ? structured::ConstraintKind::Regex : structured::ConstraintKind::Grammar;
    given.push_back({key, {kind, v->get<std::string>()}});
  }
  if (given.size() > 1)
    throw bad_field(given[1].param, "'" + given[0].param + "' and '" + given[1].param +
                                        "' cannot be combined: give one structured-output field");
  if (given.empty()) return std::nullopt;
  return given[0];
}

std::shared_ptr<const structured::TokenConstraint> parse_structured_output(const json& body, const Tokenizer& tok,
                                                                           const std::string& raw_body) {
  const auto f = parse_structured_field(body, raw_body);
  if (!f) return nullptr;
  try {
    return structured::shared_constraint(f->spec, structured::vocabulary_of(tok));
  } catch (const Error& e) {
    throw bad_field(f->param, "Invalid '" + f->param + "': " + e.what());
  }
}

}  // namespace

void apply_structured_output(const CompletionRequest& r, GenerationConfig& g) { g.constraint = r.constraint; }

std::string requested_model(const json& body) {
  const json* v = field(body, "model");
  if (!v) return "";
  if (!v->is_string()) throw bad_field("model", "'model' must be a string");
  return v->get<std::string>();
}

std::vector<std::vector<int32_t>> parse_prompts(const json& value, const Tokenizer& tok, int vocab,
                                                const std::string& name) {
  const std::string shapes = "'" + name + "' must be a string, an array of strings, an array of token ids or an "
                             "array of token id arrays";
  if (value.is_string()) return {encode(tok, value.get<std::string>(), name)};
  if (!value.is_array() || value.empty()) throw bad_field(name, shapes);
  if (is_token_array(value)) return {token_list(value, vocab, name)};
  std::vector<std::vector<int32_t>> prompts;
  for (const json& p : value) {
    if (p.is_string()) prompts.push_back(encode(tok, p.get<std::string>(), name));
    else if (is_token_array(p)) prompts.push_back(token_list(p, vocab, name));
    else throw bad_field(name, shapes);
  }
  return prompts;
}

CompletionRequest parse_completion_request(const json& body, const Tokenizer& tok, int vocab, int max_positions,
                                           std::optional<int32_t> start_token, const std::string& raw_body) {
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
  if (field(body, "suffix"))
    throw bad_field("suffix", "'suffix' (insertion) is not supported: these models only continue text");
  CompletionRequest r;
  r.model = requested_model(body);
  const json* prompt = field(body, "prompt");
  if (!prompt) throw bad_field("prompt", "'prompt' is required");
  r.prompts = parse_prompts(*prompt, tok, vocab, "prompt");
  if (r.prompts.size() > static_cast<size_t>(kMaxPrompts))
    throw bad_field("prompt", "at most " + std::to_string(kMaxPrompts) + " prompts per request, got " +
                                  std::to_string(r.prompts.size()));

  r.max_tokens = int_in(body, "max_tokens", 16, 0, max_positions);
  r.n = int_in(body, "n", 1, 1, kMaxChoices);
  r.best_of = int_in(body, "best_of", r.n, 1, kMaxChoices);
  if (r.best_of < r.n) throw bad_field("best_of", "'best_of' must be at least 'n'");
  r.stream = bool_field(body, "stream").value_or(false);
  r.echo = bool_field(body, "echo").value_or(false);
  if (const json* o = field(body, "stream_options")) {
    if (!o->is_object()) throw bad_field("stream_options", "'stream_options' must be an object");
    r.stream_usage = bool_field(*o, "include_usage").value_or(false);
  }
  if (auto l = int_field(body, "logprobs")) {
    check_range("logprobs", static_cast<double>(*l), 0, kMaxLogprobs);
    r.logprobs = static_cast<int>(*l);
  }
  r.stop = parse_stop(body);
  r.logit_bias = parse_logit_bias(body, vocab);
  if (auto m = int_field(body, "min_tokens")) {
    check_range("min_tokens", static_cast<double>(*m), 0, max_positions);
    r.min_tokens = static_cast<int>(*m);
  }
  parse_sampling(body, r);
  parse_beams(body, r);
  if (const json* u = field(body, "user"); u && !u->is_string()) throw bad_field("user", "'user' must be a string");
  r.constraint = parse_structured_output(body, tok, raw_body);

  if (r.stream && r.best_of > r.n) throw bad_field("best_of", "'best_of' greater than 'n' cannot be streamed");
  if (r.stream && r.beam_search()) throw bad_field("stream", "beam search cannot be streamed");
  for (auto& p : r.prompts) {
    if (p.empty() && start_token) p = {*start_token};
    if (p.empty()) throw bad_field("prompt", "the prompt is empty and the model has no bos_token_id to start from");
    if (static_cast<int>(p.size()) + r.max_tokens > max_positions)
      throw bad_field("prompt", "This model's maximum context length is " + std::to_string(max_positions) +
                                    " tokens, however you requested " + std::to_string(p.size() + r.max_tokens) +
                                    " tokens (" + std::to_string(p.size()) + " in your prompt; " +
                                    std::to_string(r.max_tokens) + " for the completion). Please reduce your "
                                    "prompt; or completion length.");
  }
  return r;
}

}  // namespace lmforge::serve
