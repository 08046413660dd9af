// JSON Schema subset -> grammar: documents that must match and documents that must not, plus the
// errors for keys outside the subset.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/error_of.h"
#include "lmforge/structured/constraint.h"
#include "lmforge/structured/gbnf.h"
#include "lmforge/structured/json_schema.h"
#include "lmforge/structured/matcher.h"

namespace lmforge::structured {
namespace {

Matcher schema_matcher(const char* schema) { return Matcher(json_schema_to_grammar(nlohmann::ordered_json::parse(schema))); }

TEST(JsonObject, AnyObjectWithLimitedWhitespace) {
  Matcher m(parse_gbnf(json_object_gbnf()));
  EXPECT_TRUE(m.matches(R"({"a": [1, 2.5e3, -0.5, true, null, {"b": "x\"y\u00e9"}], "c": {}})"));
  EXPECT_TRUE(m.matches("{\n  \"a\": 1\n}"));
  EXPECT_TRUE(m.matches("{}"));
  EXPECT_FALSE(m.matches("[1]"));             // not an object
  EXPECT_FALSE(m.matches(R"({"a": 01})"));    // leading zero
  EXPECT_FALSE(m.matches(R"({"a": 1,})"));    // trailing comma
  EXPECT_FALSE(m.matches("{\"a\":  1}"));     // two spaces: more whitespace than allowed
  EXPECT_FALSE(m.matches("{\"a\": \"x\ny\"}"));  // raw control character in a string
  EXPECT_FALSE(m.matches(" {}"));             // nothing before the object
  EXPECT_FALSE(m.matches("{}\n"));            // nor after it: eos comes right after the brace
  EXPECT_TRUE(m.matches("{ \"a\" : [ 1 , 2 ] , \"b\" : { } }"));
}

TEST(JsonSchema, ObjectWithRequiredAndOptionalProperties) {
  Matcher m = schema_matcher(R"({"type": "object", "properties": {
      "name": {"type": "string"}, "age": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}},
      "ok": {"type": "boolean"}}, "required": ["name", "ok"]})");
  EXPECT_TRUE(m.matches(R"({"name": "Ann", "ok": true})"));
  EXPECT_TRUE(m.matches(R"({"name": "Ann", "ok": false, "age": 3})"));
  EXPECT_TRUE(m.matches(R"({"name": "Ann", "ok": false, "age": 3, "tags": ["a", "b"]})"));
  EXPECT_TRUE(m.matches(R"({"name": "Ann", "ok": false, "tags": []})"));
  EXPECT_FALSE(m.matches(R"({"ok": true})"));                         // required name missing
  EXPECT_FALSE(m.matches(R"({"name": "Ann", "ok": true, "x": 1})"));  // no additional properties
  EXPECT_FALSE(m.matches(R"({"name": "Ann", "ok": true, "age": 3.5})"));  // integer
  EXPECT_FALSE(m.matches(R"({"name": 1, "ok": true})"));
}

TEST(JsonSchema, NestedObjectsAndArraysOfObjects) {
  Matcher m = schema_matcher(R"({"type": "object", "properties": {
      "user": {"type": "object", "properties": {"id": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}},
               "required": ["id"]},
      "events": {"type": "array", "items": {"type": "object", "properties": {"t": {"type": "number"}}, "required": ["t"]},
                 "minItems": 1}},
      "required": ["user", "events"]})");
  EXPECT_TRUE(m.matches(R"({"user": {"id": 1, "tags": ["x"]}, "events": [{"t": 0.5}, {"t": -2e3}]})"));
  EXPECT_TRUE(m.matches(R"({"user": {"id": 1}, "events": [{"t": 1}]})"));
  EXPECT_FALSE(m.matches(R"({"user": {"tags": []}, "events": [{"t": 1}]})"));  // nested required id
  EXPECT_FALSE(m.matches(R"({"user": {"id": 1}, "events": []})"));             // minItems
  EXPECT_FALSE(m.matches(R"({"user": {"id": 1}, "events": [{"t": 1, "u": 2}]})"));
  EXPECT_FALSE(m.matches(R"({"user": {"id": 1}, "events": [{"t": "1"}]})"));
}

TEST(JsonSchema, RecursiveDefinitions) {
  Matcher m = schema_matcher(R"({"$defs": {"node": {"type": "object", "properties": {
      "v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["v"]}},
      "$ref": "#/$defs/node"})");
  EXPECT_TRUE(m.matches(R"({"v": 1})"));
  EXPECT_TRUE(m.matches(R"({"v": 1, "kids": [{"v": 2, "kids": [{"v": 3}]}, {"v": 4, "kids": []}]})"));
  EXPECT_FALSE(m.matches(R"({"v": 1, "kids": [{"v": 2, "kids": [{"w": 3}]}]})"));
  auto err = [](const char* schema) {
    return test::error_of([&] { json_schema_to_grammar(nlohmann::ordered_json::parse(schema)); });
  };
  EXPECT_EQ(err(R"({"$ref": "#/$defs/x"})"), "json_schema: '$ref' \"#/$defs/x\" names no definition at #");
  EXPECT_EQ(err(R"({"$ref": "http://x/s.json"})"),
            "json_schema: '$ref' \"http://x/s.json\" is not a local #/$defs/NAME reference at #");
  EXPECT_EQ(err(R"({"$ref": "#/$defs/a", "type": "string", "$defs": {"a": {}}})"),
            "json_schema: '$ref' with sibling key 'type' is not supported at #");
}

TEST(JsonSchema, OnlyOptionalProperties) {
  Matcher m = schema_matcher(R"({"properties": {"a": {"type": "null"}, "b": {"type": "number"}}})");
  EXPECT_TRUE(m.matches("{}"));
  EXPECT_TRUE(m.matches(R"({"b": -1.25})"));
  EXPECT_TRUE(m.matches(R"({"a": null, "b": 2})"));
  EXPECT_FALSE(m.matches(R"({, "b": 2})"));
  EXPECT_FALSE(m.matches(R"({"b": 2, "a": null})"));  // listed order
}

TEST(JsonSchema, EnumConstAnyOfAndArrayBounds) {
  Matcher m = schema_matcher(R"({"type": "object", "properties": {
      "color": {"enum": ["red", "green", 3]}, "v": {"const": "x"},
      "id": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
      "xs": {"type": "array", "items": {"type": ["integer", "null"]}, "minItems": 1, "maxItems": 2}},
      "required": ["color", "v", "id", "xs"]})");
  EXPECT_TRUE(m.matches(R"({"color": "green", "v": "x", "id": 7, "xs": [1, null]})"));
  EXPECT_TRUE(m.matches(R"({"color": 3, "v": "x", "id": "seven", "xs": [null]})"));
  EXPECT_FALSE(m.matches(R"({"color": "blue", "v": "x", "id": 7, "xs": [1]})"));
  EXPECT_FALSE(m.matches(R"({"color": "red", "v": "y", "id": 7, "xs": [1]})"));
  EXPECT_FALSE(m.matches(R"({"color": "red", "v": "x", "id": true, "xs": [1]})"));
  EXPECT_FALSE(m.matches(R"({"color": "red", "v": "x", "id": 7, "xs": []})"));
  EXPECT_FALSE(m.matches(R"({"color": "red", "v": "x", "id": 7, "xs": [1, 2, 3]})"));
}

TEST(JsonSchema, StringLengthsAndPatterns) {
  Matcher m = schema_matcher(R"({"type": "object", "properties": {
      "code": {"type": "string", "pattern": "^[A-Z]{2}-\\d{3}$"},
      "note": {"type": "string", "minLength": 2, "maxLength": 4},
      "free": {"type": "string", "pattern": ".*"}}, "required": ["code", "note", "free"]})");
  EXPECT_TRUE(m.matches(R"({"code": "AB-123", "note": "hey", "free": "x y"})"));
  EXPECT_TRUE(m.matches(R"({"code": "ZZ-000", "note": "a\"b", "free": ""})"));  // an escape is one character
  EXPECT_FALSE(m.matches(R"({"code": "AB-12", "note": "hey", "free": ""})"));
  EXPECT_FALSE(m.matches(R"({"code": "ab-123", "note": "hey", "free": ""})"));
  EXPECT_FALSE(m.matches(R"({"code": "AB-123", "note": "h", "free": ""})"));
  EXPECT_FALSE(m.matches(R"({"code": "AB-123", "note": "hello", "free": ""})"));
  // Through a pattern, characters JSON escapes are never produced: the raw match is the JSON text.
  EXPECT_FALSE(m.matches(R"({"code": "AB-123", "note": "hey", "free": "a\"b"})"));
  EXPECT_FALSE(m.matches(R"({"code": "AB-123", "note": "hey", "free": "a"b"})"));
}

TEST(JsonSchema, UnsupportedKeysAreNamed) {
  auto err = [](const char* schema) {
    return test::error_of([&] { json_schema_to_grammar(nlohmann::ordered_json::parse(schema)); });
  };
  EXPECT_EQ(err(R"({"type": "object", "properties": {"age": {"type": "integer", "minimum": 0}}})"),
            "json_schema: unsupported key 'minimum' at #/properties/age");
  EXPECT_EQ(err(R"({"type": "object", "oneOf": []})"), "json_schema: unsupported key 'oneOf' at #");
  EXPECT_NE(err(R"({"type": "date"})").find("unsupported type 'date'"), std::string::npos);
  EXPECT_NE(err(R"({"properties": {"a": {}}, "required": ["b"]})").find("'required' names \"b\""), std::string::npos);
  EXPECT_NE(err(R"({"type": "array", "minItems": 3, "maxItems": 1})").find("maxItems"), std::string::npos);
  EXPECT_EQ(err(R"({"properties": {"a": {"type": "string", "pattern": "(x"}}})"),
            "json_schema: 'pattern' at #/properties/a/pattern: regex: expected ')' to close the group at line 1, column 3");
}

TEST(JsonSchema, SchemaTextThatIsNotJsonIsOneError) {
  const auto err = [](const char* text) { return test::error_of([&] { grammar_of({ConstraintKind::JsonSchema, text}); }); };
  EXPECT_EQ(err("{\"type\": ").rfind("json_schema: not valid JSON", 0), 0u);
  EXPECT_EQ(err(R"({"type": "array", "maxItems": 1e999})").rfind("json_schema: not valid JSON", 0), 0u);  // out_of_range
}

}  // namespace
}  // namespace lmforge::structured
