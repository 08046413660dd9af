#pragma once
// JSON as GBNF: a built-in grammar for any JSON object (OpenAI's response_format json_object) and a
// converter from a JSON Schema subset (OpenAI's strict mode, llama.cpp's json_schema_to_grammar).
//
// Supported schema keys: type (object, array, string, number, integer, boolean, null, or a list of
// them), properties, required, additionalProperties (false or absent: an object with properties
// has exactly those keys), items, minItems, maxItems, minLength, maxLength, pattern (a regex for
// the string's characters, regex.h's subset; characters JSON would have to escape, `"` `\` and
// controls, are never produced through it), enum, const, anyOf, $ref to "#/$defs/NAME" (or
// "#/definitions/NAME") of the root, recursive ones included, and the annotations
// title, description, default, examples, $schema, $id, $comment (ignored). Any other key is an
// error naming it and where it is (e.g. "json_schema: unsupported key 'minimum' at
// #/properties/age"). Objects: the required properties come first, in the order `properties`
// lists them; the optional ones may follow, in that order, each present or not.
//
// Whitespace: after `{`, `[`, `:` and `,`, and after each member or element (before `,` `}` `]`),
// the output may have nothing, one space, or a newline followed by up to 20 spaces/tabs (llama.cpp's
// choice): room for a model's usual formatting, but not for an endless run of blanks. None before or
// after the top-level value, so eos can follow its closing brace at once.
#include <string>

#include <nlohmann/json.hpp>

#include "lmforge/structured/grammar.h"

namespace lmforge::structured {

std::string json_object_gbnf();
// Throws lmforge::Error "json_schema: ..." naming the key and its location. An ordered_json keeps
// the order of `properties` as written, which sets the order of the output's members.
Grammar json_schema_to_grammar(const nlohmann::ordered_json& schema);

}  // namespace lmforge::structured
