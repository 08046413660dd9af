// JSON Schema subset -> GBNF text. Each subschema becomes one rule named after where it sits;
// the JSON primitives (string, number, ...) are shared rules, written once.
#include "lmforge/structured/json_schema.h"

#include <cctype>
#include <map>
#include <set>
#include <string>

#include "lmforge/error.h"
#include "lmforge/structured/gbnf.h"
#include "lmforge/structured/regex.h"

namespace lmforge::structured {

namespace {

// The primitives every JSON grammar here uses.
constexpr const char* kJsonPrimitives = R"(ws ::= | " " | "\n" [ \t]{0,20}
value ::= object | array | string | number | boolean | null
object ::= "{" ws ( member ( "," ws member )* )? "}"
member ::= string ws ":" ws value ws
array ::= "[" ws ( value ws ( "," ws value ws )* )? "]"
string ::= "\"" char* "\""
char ::= [^"\\\x7F\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F]{4} )
int-part ::= "-"? ( [0] | [1-9] [0-9]{0,15} )
integer ::= int-part
number ::= int-part ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,4} )?
boolean ::= "true" | "false"
null ::= "null"
)";

// `text` as a GBNF string literal.
std::string gbnf_literal(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      const char* hex = "0123456789ABCDEF";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

// A JSON value written exactly one way (compact).
std::string json_literal(const nlohmann::ordered_json& v) { return gbnf_literal(v.dump()); }

const std::set<std::string> kIgnoredKeys = {"title", "description", "default", "examples", "$schema", "$id", "$comment"};
const std::set<std::string> kSupportedKeys = {"type",      "properties", "required", "additionalProperties",
                                              "items",     "minItems",   "maxItems", "enum",
                                              "const",     "anyOf",      "pattern",  "minLength",
                                              "maxLength", "$ref",       "$defs",    "definitions"};

// A string `pattern`, embedded after the GBNF text is parsed: `rule` is its placeholder.
struct Pattern {
  std::string rule, regex, where;
};

class SchemaConverter {
 public:
  std::string convert(const nlohmann::ordered_json& schema) {
    root_ = &schema;
    const std::string root = visit(schema, "#", "root");
    std::string out = "root ::= " + root + "\n";
    for (const auto& [name, body] : rules_) out += name + " ::= " + body + "\n";
    return out + kJsonPrimitives;
  }

 private:
  [[noreturn]] static void fail(const std::string& msg, const std::string& where) {
    throw Error("json_schema: " + msg + " at " + where);
  }

  // A new rule holding `body`; returns its name.
  std::string add(const std::string& hint, const std::string& body) {
    std::string name;
    for (char c : hint) name += std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '-';
    name = "s-" + name;
    std::string unique = name;
    for (int i = 2; rules_.count(unique); ++i) unique = name + "-" + std::to_string(i);
    rules_[unique] = body;
    return unique;
  }

  void check_keys(const nlohmann::ordered_json& s, const std::string& where) {
    for (const auto& [key, value] : s.items())
      if (!kSupportedKeys.count(key) && !kIgnoredKeys.count(key)) fail("unsupported key '" + key + "'", where);
  }

  std::string visit(const nlohmann::ordered_json& s, const std::string& where, const std::string& hint) {
    if (s.is_boolean() && s.get<bool>()) return "value";
    if (!s.is_object()) fail("a schema must be an object", where);
    check_keys(s, where);
    if (s.contains("$ref")) return ref(s, where);
    if (s.contains("const")) return add(hint, json_literal(s["const"]));
    if (s.contains("enum")) return enum_rule(s["enum"], where + "/enum", hint);
    if (s.contains("anyOf")) return any_of(s["anyOf"], where + "/anyOf", hint);
    if (!s.contains("type")) {
      if (s.contains("properties")) return object(s, where, hint);
      if (s.contains("items")) return array(s, where, hint);
      return "value";
    }
    const auto& type = s["type"];
    if (type.is_array()) {
      std::string body;
      for (const auto& t : type) body += (body.empty() ? "" : " | ") + typed(s, t, where, hint);
      if (body.empty()) fail("'type' is an empty list", where);
      return add(hint, body);
    }
    return typed(s, type, where, hint);
  }

  std::string typed(const nlohmann::ordered_json& s, const nlohmann::ordered_json& type, const std::string& where, const std::string& hint) {
    if (!type.is_string()) fail("'type' must be a string or a list of strings", where);
    const std::string t = type.get<std::string>();
    if (t == "object") return object(s, where, hint);
    if (t == "array") return array(s, where, hint);
    if (t == "string") return string(s, where, hint);
    if (t == "number" || t == "integer" || t == "boolean" || t == "null") return t;
    fail("unsupported type '" + t + "'", where + "/type");
  }

  std::string string(const nlohmann::ordered_json& s, const std::string& where, const std::string& hint) {
    if (s.contains("pattern")) {
      if (!s["pattern"].is_string()) fail("'pattern' must be a string", where);
      if (s.contains("minLength") || s.contains("maxLength"))
        fail("unsupported key 'minLength'/'maxLength' together with 'pattern' (put the length in the pattern)", where);
      const std::string rule = add(hint + "-pattern", "\"\\\"\"");  // replaced by the regex later
      patterns_.push_back({rule, s["pattern"].get<std::string>(), where + "/pattern"});
      return rule;
    }
    if (!s.contains("minLength") && !s.contains("maxLength")) return "string";
    const int min = count(s, "minLength", 0, where);
    const int max = count(s, "maxLength", -1, where);
    if (max >= 0 && max < min) fail("'maxLength' is smaller than 'minLength'", where);
    return add(hint, "\"\\\"\" char" + bounds(min, max) + " \"\\\"\"");
  }

 public:
  const std::vector<Pattern>& patterns() const { return patterns_; }

 private:
  // "$ref": "#/$defs/NAME" (or "#/definitions/NAME") of the root schema: one rule per definition,
  // named before its body is converted, so a definition may refer to itself (a tree).
  std::string ref(const nlohmann::ordered_json& s, const std::string& where) {
    for (const auto& [key, value] : s.items())
      if (key != "$ref" && key != "$defs" && key != "definitions" && !kIgnoredKeys.count(key))
        fail("'$ref' with sibling key '" + key + "' is not supported", where);
    if (!s["$ref"].is_string()) fail("'$ref' must be a string", where);
    const std::string target = s["$ref"].get<std::string>();
    if (auto it = refs_.find(target); it != refs_.end()) return it->second;
    std::string section, name;
    for (const char* prefix : {"#/$defs/", "#/definitions/"}) {
      if (target.rfind(prefix, 0) == 0) {
        section = std::string(prefix).substr(2, std::string(prefix).size() - 3);
        name = target.substr(std::string(prefix).size());
      }
    }
    if (section.empty() || name.empty() || name.find('/') != std::string::npos)
      fail("'$ref' " + nlohmann::ordered_json(target).dump() + " is not a local #/$defs/NAME reference", where);
    if (!root_->contains(section) || !(*root_)[section].contains(name))
      fail("'$ref' " + nlohmann::ordered_json(target).dump() + " names no definition", where);
    const std::string rule = add("def-" + name, "");
    refs_[target] = rule;
    rules_[rule] = visit((*root_)[section][name], "#/" + section + "/" + name, "def-" + name);
    return rule;
  }

  std::string enum_rule(const nlohmann::ordered_json& values, const std::string& where, const std::string& hint) {
    if (!values.is_array() || values.empty()) fail("'enum' must be a non-empty list", where);
    std::string body;
    for (const auto& v : values) body += (body.empty() ? "" : " | ") + json_literal(v);
    return add(hint, body);
  }

  std::string any_of(const nlohmann::ordered_json& list, const std::string& where, const std::string& hint) {
    if (!list.is_array() || list.empty()) fail("'anyOf' must be a non-empty list", where);
    std::string body;
    for (size_t i = 0; i < list.size(); ++i)
      body += (body.empty() ? "" : " | ") + visit(list[i], where + "/" + std::to_string(i), hint + "-" + std::to_string(i));
    return add(hint, body);
  }

  std::string object(const nlohmann::ordered_json& s, const std::string& where, const std::string& hint) {
    const auto extra = s.value("additionalProperties", nlohmann::ordered_json());
    const bool closed = extra.is_boolean() && !extra.get<bool>();
    if (!extra.is_null() && !extra.is_boolean())
      fail("unsupported key 'additionalProperties' (only true or false)", where);
    if (!s.contains("properties") || s["properties"].empty()) {
      if (s.contains("required") && !s["required"].empty()) fail("'required' names properties that are not in 'properties'", where);
      return closed ? add(hint, "\"{\" ws \"}\"") : "object";
    }
    if (extra.is_boolean() && extra.get<bool>())
      fail("unsupported key 'additionalProperties' (true, with properties)", where);
    const auto& props = s["properties"];
    if (!props.is_object()) fail("'properties' must be an object", where);
    const std::set<std::string> required = required_names(s, props, where);
    std::vector<std::string> req, opt;
    for (const auto& [name, sub] : props.items()) {
      const std::string kv = gbnf_literal(nlohmann::ordered_json(name).dump()) + " ws \":\" ws " +
                             visit(sub, where + "/properties/" + name, hint + "-" + name) + " ws";
      (required.count(name) ? req : opt).push_back(kv);
    }
    return add(hint, "\"{\" ws " + members(req, opt, hint) + " \"}\"");
  }

  std::set<std::string> required_names(const nlohmann::ordered_json& s, const nlohmann::ordered_json& props, const std::string& where) {
    std::set<std::string> out;
    if (!s.contains("required")) return out;
    if (!s["required"].is_array()) fail("'required' must be a list of property names", where);
    for (const auto& r : s["required"]) {
      if (!r.is_string() || !props.contains(r.get<std::string>()))
        fail("'required' names " + r.dump() + ", which is not in 'properties'", where + "/required");
      out.insert(r.get<std::string>());
    }
    return out;
  }

  // Required members in order, then any ordered subset of the optional ones, comma-separated.
  std::string members(const std::vector<std::string>& req, const std::vector<std::string>& opt, const std::string& hint) {
    std::string body;
    for (const auto& kv : req) body += (body.empty() ? "" : " \",\" ws ") + kv;
    if (opt.empty()) return body;
    // tail(i): the optional members from i on, each with its leading comma, each present or not.
    std::vector<std::string> tails(opt.size() + 1);
    for (size_t i = opt.size(); i-- > 0;) {
      tails[i] = add(hint + "-opt" + std::to_string(i), "( \",\" ws " + opt[i] + " )? " + (i + 1 < opt.size() ? tails[i + 1] : ""));
    }
    if (!req.empty()) return body + " " + tails[0];
    // No required member: the first one present has no comma before it.
    std::string first;
    for (size_t i = 0; i < opt.size(); ++i)
      first += (first.empty() ? "" : " | ") + opt[i] + (i + 1 < opt.size() ? " " + tails[i + 1] : "");
    return "( " + first + " )?";
  }

  std::string array(const nlohmann::ordered_json& s, const std::string& where, const std::string& hint) {
    const std::string item = s.contains("items") ? visit(s["items"], where + "/items", hint + "-item") : "value";
    const int min = count(s, "minItems", 0, where);
    const int max = count(s, "maxItems", -1, where);
    if (max >= 0 && max < min) fail("'maxItems' is smaller than 'minItems'", where);
    if (max == 0) return add(hint, "\"[\" ws \"]\"");
    const std::string more = "( \",\" ws " + item + " ws )" + bounds(std::max(min - 1, 0), max < 0 ? -1 : max - 1);
    const std::string list = item + " ws " + more;
    return add(hint, "\"[\" ws " + (min == 0 ? "( " + list + " )?" : list) + " \"]\"");
  }

  // (Built with append: GCC 12 warns falsely on "{" + std::string.)
  static std::string bounds(int min, int max) {
    if (max < 0 && min == 0) return "*";
    std::string out(1, '{');
    out.append(std::to_string(min)).append(",");
    if (max >= 0) out.append(std::to_string(max));
    return out.append("}");
  }

  static int count(const nlohmann::ordered_json& s, const char* key, int fallback, const std::string& where) {
    if (!s.contains(key)) return fallback;
    const auto& v = s[key];
    if (!v.is_number_unsigned() || v.get<uint64_t>() > 1000) fail(std::string("'") + key + "' must be an integer 0..1000", where);
    return static_cast<int>(v.get<uint64_t>());
  }

  std::map<std::string, std::string> rules_;
  std::vector<Pattern> patterns_;
  const nlohmann::ordered_json* root_ = nullptr;  // where $ref looks up $defs
  std::map<std::string, std::string> refs_;        // "$ref" target -> its rule
};

// The regex of a `pattern` as the characters of a JSON string: bytes JSON would have to escape are
// taken out of every byte set, so the raw match is also the JSON text.
Grammar pattern_grammar(const Pattern& p) {
  Grammar re;
  try {
    re = regex_to_grammar(p.regex);
  } catch (const Error& e) {
    throw Error("json_schema: 'pattern' at " + p.where + ": " + e.what());
  }
  for (ByteSet& set : re.byte_sets) {
    set.reset('"');
    set.reset('\\');
    set.reset(0x7F);
    for (int c = 0; c < 0x20; ++c) set.reset(c);
  }
  return re;
}

}  // namespace

std::string json_object_gbnf() { return std::string("root ::= object\n") + kJsonPrimitives; }

Grammar json_schema_to_grammar(const nlohmann::ordered_json& schema) {
  SchemaConverter converter;
  Grammar g = parse_gbnf(converter.convert(schema));
  const Sequence quote = g.literal("\"");
  for (const Pattern& p : converter.patterns()) {
    const uint32_t root = g.embed(pattern_grammar(p), p.rule + "-");
    Sequence seq = quote;
    seq.push_back({Element::Kind::Rule, root});
    seq.insert(seq.end(), quote.begin(), quote.end());
    g.rules[g.rule_named(p.rule)].alternatives = {seq};
  }
  return g;
}

}  // namespace lmforge::structured
