// Field records of the extraction workflow (seed 004): the tag parser's rules (fields.h), exact-
// match scoring and the predictions-file reader. Every expected value is written out by hand from
// the rules and the seed's README example.
#include <gtest/gtest.h>

#include "lmforge/tasks/fields.h"
#include "tasks/tasks_test_util.h"

namespace lmforge::tasks {
namespace {

using Pairs = FieldRecord;

// The seed README's example, character for character.
const std::string kSeedPrompt =
    "<language> en <back> WILLIAM DOIG (NUJ 03: <b> 62 NETHERPARK AVENU <b> GLASGOW G44 3XW <b> SCOTLAND <b> "
    "041-637-2005 <b> DEPENDENT <b> LAURY <b> Glasgow <b> Museum and Art Galleries, Kelvingrove <front> ME <b> "
    "1994: ::: <b> RES <b> ALL CALL AND MUSEUM <END>";
const std::string kSeedOutput =
    "<language> en <rewrite> 1994 - WILLIAM DOIG (NUJ 03: Scotland, Glasgow. Museum and Art Galleries, Kelvingrove. "
    "<title> WILLIAM DOIG <date> 1994";
const Pairs kSeedFields = {
    {"language", "en"},
    {"rewrite", "1994 - WILLIAM DOIG (NUJ 03: Scotland, Glasgow. Museum and Art Galleries, Kelvingrove."},
    {"title", "WILLIAM DOIG"},
    {"date", "1994"}};

TEST(Fields, SeedOutput) {
  const ParsedFields p = parse_fields(kSeedOutput);
  EXPECT_EQ(p.fields, kSeedFields);
  EXPECT_EQ(p.preamble, "");
  EXPECT_TRUE(p.repeated.empty());
  EXPECT_EQ(p.stopped_at, "");
  EXPECT_FALSE(p.prompt_dropped);
}

TEST(Fields, WholeDecodedSequenceDropsThePrompt) {
  // HF batch_decode(skip_special_tokens=True) of bos + " " + prompt + the answer.
  const ParsedFields p = parse_fields(" " + kSeedPrompt + " " + kSeedOutput);
  EXPECT_EQ(p.fields, kSeedFields);
  EXPECT_TRUE(p.prompt_dropped);
  EXPECT_EQ(p.preamble, "");
  // A prompt with no answer yet, or cut before its <END>: no fields.
  for (const std::string& t : {kSeedPrompt, std::string("<language> en <back> A <b> B <front> C")}) {
    const ParsedFields q = parse_fields(t);
    EXPECT_TRUE(q.fields.empty()) << t;
    EXPECT_TRUE(q.prompt_dropped) << t;
  }
  // <front> alone marks a prompt too; what follows the first <END> after it is the answer.
  EXPECT_EQ(parse_fields("<front> X <END> <title> T <END>").fields, (Pairs{{"title", "T"}}));
}

TEST(Fields, PromptTagAfterAnAnswerTagEndsTheRecord) {
  // The answer came first, so nothing is dropped; the next row's prompt ends the record.
  const ParsedFields p = parse_fields("<language> en <title> A <language> en <back> X <front> Y <END> <date> 1");
  EXPECT_EQ(p.fields, (Pairs{{"language", "en"}, {"title", "A"}}));
  EXPECT_EQ(p.repeated, std::vector<std::string>{"language"});
  EXPECT_EQ(p.stopped_at, "<back>");
  EXPECT_FALSE(p.prompt_dropped);
  EXPECT_EQ(parse_fields("<rewrite> R <front> F <END> <title> T").fields, (Pairs{{"rewrite", "R"}}));
}

TEST(Fields, Preamble) {
  const ParsedFields p = parse_fields("  some words\n<title> A");
  EXPECT_EQ(p.preamble, "some words");
  EXPECT_EQ(p.fields, (Pairs{{"title", "A"}}));
  const ParsedFields none = parse_fields(" no tags at all ");
  EXPECT_TRUE(none.fields.empty());
  EXPECT_EQ(none.preamble, "no tags at all");
  EXPECT_TRUE(parse_fields("").fields.empty());
  EXPECT_EQ(parse_fields("").preamble, "");
}

TEST(Fields, WhitespaceIsTrimmedAroundValuesOnly) {
  EXPECT_EQ(parse_fields("<title>\n  A  B \t<date>1994\r\n").fields, (Pairs{{"title", "A  B"}, {"date", "1994"}}));
  // Tags need no spaces around them.
  const ParsedFields p = parse_fields("x<title>A<date>B");
  EXPECT_EQ(p.preamble, "x");
  EXPECT_EQ(p.fields, (Pairs{{"title", "A"}, {"date", "B"}}));
}

TEST(Fields, EmptyValue) {
  EXPECT_EQ(parse_fields("<agency> <date> 1994").fields, (Pairs{{"agency", ""}, {"date", "1994"}}));
  EXPECT_EQ(parse_fields("<title>").fields, (Pairs{{"title", ""}}));
}

TEST(Fields, RepeatedTagFirstWins) {
  const ParsedFields p = parse_fields("<title> A <date> 1 <title> B <agency> C <title> D");
  EXPECT_EQ(p.fields, (Pairs{{"title", "A"}, {"date", "1"}, {"agency", "C"}}));
  EXPECT_EQ(p.repeated, (std::vector<std::string>{"title", "title"}));
}

TEST(Fields, StopMarkers) {
  ParsedFields p = parse_fields("<title> A <END> <date> 1");
  EXPECT_EQ(p.fields, (Pairs{{"title", "A"}}));
  EXPECT_EQ(p.stopped_at, "<END>");
  p = parse_fields("<title> A<|endoftext|><date> 1");
  EXPECT_EQ(p.fields, (Pairs{{"title", "A"}}));
  EXPECT_EQ(p.stopped_at, "<|endoftext|>");
  // Before the first field a stop marker is preamble, not the end.
  p = parse_fields(" <END> <title> A");
  EXPECT_EQ(p.preamble, "<END>");
  EXPECT_EQ(p.fields, (Pairs{{"title", "A"}}));
  EXPECT_EQ(p.stopped_at, "");
}

TEST(Fields, OtherAngleBracketsAreText) {
  EXPECT_EQ(parse_fields("<rewrite> a <b> b <Title> c < date > d <foo> e <END").fields,
            (Pairs{{"rewrite", "a <b> b <Title> c < date > d <foo> e <END"}}));
  EXPECT_EQ(parse_fields("<title> 1 < 2 <date").fields, (Pairs{{"title", "1 < 2 <date"}}));
  EXPECT_EQ(parse_fields("<title> <<date> 5").fields, (Pairs{{"title", "<"}, {"date", "5"}}));
}

TEST(Fields, OtherSyntax) {
  FieldSyntax s;
  s.fields = {"q", "a"};
  s.header_field = "";
  EXPECT_EQ(parse_fields("<q> x <a> y <title> z", s).fields, (Pairs{{"q", "x"}, {"a", "y <title> z"}}));
}

TEST(Fields, AnswerText) {
  // Plain prompt: the continuation alone.
  EXPECT_EQ(answer_text("<language> en <back> A <front> B <END>", " <language> en <title> T"), " <language> en <title> T");
  // Primed: what follows the prompt's <END> comes first.
  EXPECT_EQ(answer_text("<language> en <back> A <front> B <END> <language> en <title>", " T"), " <language> en <title> T");
  EXPECT_EQ(parse_fields(answer_text("<back> A <END> <language> en <title>", " T <date> 1")).fields,
            (Pairs{{"language", "en"}, {"title", "T"}, {"date", "1"}}));
  // Few-shot: only the part after the last <END>.
  EXPECT_EQ(answer_text("<back> A <END> <language> en <title> X <back> B <END> <language>", " en <title> Y"),
            " <language> en <title> Y");
  // No <END> in the prompt: the continuation alone.
  EXPECT_EQ(answer_text("hello <title>", " T"), " T");
}

TEST(Fields, ValueAndJson) {
  const Pairs r = {{"title", " A "}, {"date", "1994"}};
  EXPECT_EQ(field_value(r, "title"), "A");
  EXPECT_EQ(field_value(r, "agency"), "");
  // The record's order, not alphabetical.
  EXPECT_EQ(fields_json(r).dump(), R"({"title":" A ","date":"1994"})");
  EXPECT_EQ(fields_json({}).dump(), "{}");
}

TEST(Fields, Score) {
  const std::vector<Pairs> pred = {
      {{"title", "A"}, {"date", "1994"}},                   // both right (agency absent = "")
      {{"title", "B "}, {"agency", "X"}, {"date", "1995"}},  // title right after trimming, agency wrong
      {{"title", "c"}},                                      // title wrong (case), date missing
  };
  const std::vector<Pairs> ref = {
      {{"title", "A"}, {"agency", ""}, {"date", "1994"}},
      {{"title", "B"}, {"agency", ""}, {"date", "1995"}},
      {{"title", "C"}, {"agency", ""}, {"date", "1996"}},
  };
  const FieldsScore s = score_fields(pred, ref, {"title", "agency", "date"});
  ASSERT_EQ(s.per_field.size(), 3u);
  EXPECT_EQ(s.per_field[0].field, "title");
  EXPECT_EQ(s.per_field[0].correct, 2);
  EXPECT_EQ(s.per_field[1].field, "agency");
  EXPECT_EQ(s.per_field[1].correct, 2);
  EXPECT_EQ(s.per_field[2].field, "date");
  EXPECT_EQ(s.per_field[2].correct, 2);
  for (const auto& f : s.per_field) EXPECT_EQ(f.total, 3);
  EXPECT_DOUBLE_EQ(s.per_field[0].accuracy(), 2.0 / 3.0);
  // Only the rows whose reference has a value: every title and date, no agency.
  EXPECT_EQ(s.per_field[0].with_value_total, 3);
  EXPECT_EQ(s.per_field[0].with_value_correct, 2);
  EXPECT_EQ(s.per_field[1].with_value_total, 0);
  EXPECT_EQ(s.per_field[1].with_value_correct, 0);
  EXPECT_DOUBLE_EQ(s.per_field[1].with_value_accuracy(), 0.0);
  EXPECT_EQ(s.per_field[2].with_value_correct, 2);
  EXPECT_EQ(s.all_correct, 1);
  EXPECT_EQ(s.pairs, 3);
  EXPECT_DOUBLE_EQ(s.all_accuracy(), 1.0 / 3.0);

  EXPECT_NE(error_of([&] { score_fields(pred, {}, {"title"}); }).find("3 predictions but 0 references"), std::string::npos);
  EXPECT_NE(error_of([&] { score_fields(pred, ref, {}); }).find("no fields"), std::string::npos);
}

// ---- predictions files ----

TEST(FieldPredictions, ReadsFieldsOrText) {
  const auto p = parse_field_predictions(
      "{\"prompt_index\": 1, \"sequence_index\": 0, \"prompt\": \"P\", \"fields\": {\"title\": \"A\", \"date\": null}}\n"
      "\n"
      "{\"prompt_index\": 0, \"text\": \" <language> en <title> B <date> 2\"}\r\n",
      "preds.jsonl");
  ASSERT_EQ(p.size(), 2u);
  EXPECT_EQ(p[0].line, 1);
  EXPECT_EQ(p[0].prompt_index, 1);
  EXPECT_EQ(p[0].prompt, "P");
  EXPECT_EQ(p[0].fields, (Pairs{{"title", "A"}, {"date", ""}}));
  EXPECT_EQ(p[1].line, 3);
  EXPECT_EQ(p[1].prompt_index, 0);
  EXPECT_FALSE(p[1].prompt.has_value());
  EXPECT_EQ(p[1].fields, (Pairs{{"language", "en"}, {"title", "B"}, {"date", "2"}}));
  // `fields` wins over `text`.
  EXPECT_EQ(parse_field_predictions(R"({"fields": {}, "text": "<title> X"})", "p").front().fields, Pairs{});
}

TEST(FieldPredictions, Errors) {
  const auto err = [](const std::string& text) { return error_of([&] { parse_field_predictions(text, "p.jsonl"); }); };
  // The byte offset comes from the JSON library; the line is ours.
  EXPECT_EQ(err("{\"text\": \"\"}\n{\"text\": \n").rfind("p.jsonl:2: not valid JSON (at byte ", 0), 0u);
  EXPECT_EQ(err("{\"text\": 1e999}\n").rfind("p.jsonl:1: not valid JSON (", 0), 0u);  // out_of_range, not parse_error
  EXPECT_EQ(err("[1]\n"), "p.jsonl:1: a prediction is a JSON object, got array");
  EXPECT_EQ(err(R"({"prompt_index": -1, "text": ""})"), "p.jsonl:1: prompt_index must be an integer >= 0, got -1");
  EXPECT_EQ(err(R"({"prompt_index": 1.5, "text": ""})"), "p.jsonl:1: prompt_index must be an integer >= 0, got 1.5");
  EXPECT_EQ(err(R"({"prompt_index": "3", "text": ""})"), "p.jsonl:1: prompt_index must be an integer >= 0, got \"3\"");
  EXPECT_EQ(err(R"({"prompt": 3, "text": ""})"), "p.jsonl:1: prompt must be a string, got number");
  EXPECT_EQ(err(R"({"fields": "title"})"), "p.jsonl:1: fields must be an object, got string");
  EXPECT_EQ(err(R"({"fields": {"date": 1994}})"), "p.jsonl:1: fields.date must be a string, got number");
  EXPECT_EQ(err(R"({"text": 5})"), "p.jsonl:1: no \"fields\" object and no \"text\" string to parse");
  EXPECT_EQ(err("{\"prompt_index\": 0, \"text\": \"\"}\n{\"text\": \"\"}"),
            "p.jsonl:2: has no prompt_index but line 1 has one (give it on every line or on none)");
  EXPECT_EQ(err("{\"text\": \"\"}\n{\"prompt_index\": 0, \"text\": \"\"}"),
            "p.jsonl:2: has a prompt_index but line 1 has none (give it on every line or on none)");
  EXPECT_EQ(err(" \n\n"), "p.jsonl: no predictions");
}

// ---- evaluation against a references file ----

const std::string kRefs =
    "prompt,rewrite,title,agency,photographer,date\n"
    "P0,R0,T0,,,1994\n"
    "P1,R1,T1,Agency One,Ann Bell,\"May 2, 1961\"\n";

Dataset refs(const std::string& text = kRefs) { return parse_dataset(text, "val.csv"); }

std::vector<FieldPrediction> preds(const std::string& text) { return parse_field_predictions(text, "p.jsonl"); }

TEST(FieldsEvaluation, PairsByPromptIndexAndScoresEverySequence) {
  // Row 1 has two sequences (num_return_sequences 2), row 0 one, out of order.
  const auto p = preds(
      R"({"prompt_index": 1, "prompt": "P1", "fields": {"rewrite": "R1", "title": "T1", "agency": "Agency One", "photographer": "Ann Bell", "date": "May 2, 1961"}})"
      "\n"
      R"({"prompt_index": 1, "prompt": "P1", "fields": {"rewrite": "R1", "title": "T1", "date": "May 2, 1961"}})"
      "\n"
      R"({"prompt_index": 0, "prompt": "<|endoftext|> P0", "fields": {"rewrite": "R0", "title": "T9", "date": "1994"}})"
      "\n");
  const FieldsEvaluation e = evaluate_field_predictions(p, "p.jsonl", refs());
  EXPECT_EQ(e.references, 2);
  EXPECT_EQ(e.predictions, 3);
  EXPECT_EQ(e.min_per_reference, 1);
  EXPECT_EQ(e.max_per_reference, 2);
  ASSERT_EQ(e.score.per_field.size(), 5u);
  // rewrite 3/3; title 2/3 (T9); agency 2/3 (the second row-1 sequence lacks it); photographer 2/3
  // (same); date 3/3; all fields: only the first line.
  const std::vector<std::pair<std::string, int64_t>> want = {
      {"rewrite", 3}, {"title", 2}, {"agency", 2}, {"photographer", 2}, {"date", 3}};
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(e.score.per_field[i].field, want[i].first);
    EXPECT_EQ(e.score.per_field[i].correct, want[i].second) << want[i].first;
    EXPECT_EQ(e.score.per_field[i].total, 3);
  }
  // References with a value: agency and photographer only in row 1 (two sequences, the first right,
  // the second without them); the others in every row.
  EXPECT_EQ(e.score.per_field[2].with_value_total, 2);
  EXPECT_EQ(e.score.per_field[2].with_value_correct, 1);
  EXPECT_EQ(e.score.per_field[3].with_value_total, 2);
  EXPECT_EQ(e.score.per_field[3].with_value_correct, 1);
  EXPECT_EQ(e.score.per_field[4].with_value_total, 3);
  EXPECT_EQ(e.score.per_field[4].with_value_correct, 3);
  EXPECT_EQ(e.score.all_correct, 1);
  EXPECT_EQ(e.score.pairs, 3);
}

TEST(FieldsEvaluation, ByPositionAndFromTheTrainingText) {
  const Dataset d = parse_dataset(
      "text\n"
      "\"<language> en <back> A <front> B <END> <language> en <rewrite> R0 <title> T0 <date> 1994\"\n"
      "\"<language> en <back> C <front> D <END> <language> en <title> T1\"\n",
      "train.csv");
  FieldsEvalOptions o;
  o.text_column = "text";
  o.fields = {"title", "date"};
  const auto p = preds("{\"text\": \"<title> T0 <date> 1994\"}\n{\"text\": \"<title> T1 <date> 1994\"}\n");
  const FieldsEvaluation e = evaluate_field_predictions(p, "p.jsonl", d, o);
  EXPECT_EQ(e.score.per_field[0].correct, 2);  // title
  EXPECT_EQ(e.score.per_field[1].correct, 1);  // date: row 1 has none
  EXPECT_EQ(e.score.all_correct, 1);
}

TEST(FieldsEvaluation, Errors) {
  const auto err = [](const std::string& pred_text, const Dataset& d, const FieldsEvalOptions& o = {}) {
    return error_of([&] { evaluate_field_predictions(preds(pred_text), "p.jsonl", d, o); });
  };
  const std::string both = "{\"prompt_index\": 0, \"text\": \"\"}\n{\"prompt_index\": 1, \"text\": \"\"}\n";
  EXPECT_EQ(err(both, refs("prompt,title,date\nP0,T,1\nP1,T,2\n")),
            "val.csv: no column 'rewrite' (columns: prompt, title, date)");
  EXPECT_EQ(err(both, refs("text,title\nx,T\ny,T\n")),
            "val.csv: no column 'rewrite' (columns: text, title); to parse the fields from the training text, "
            "use the text column");
  EXPECT_EQ(err(both + "{\"prompt_index\": 2, \"text\": \"\"}\n", refs()),
            "p.jsonl:3: prompt_index 2 is past the last row of val.csv (2 rows)");
  EXPECT_EQ(err("{\"prompt_index\": 1, \"text\": \"\"}\n", refs()),
            "val.csv: 1 row has no prediction in p.jsonl, the first row 0 (line 2)");
  EXPECT_EQ(err("{\"text\": \"\"}\n", refs()),
            "p.jsonl: 1 prediction without prompt_index, but val.csv has 2 rows (without prompt_index the n-th "
            "prediction is row n)");
  EXPECT_EQ(err("{\"prompt_index\": 0, \"prompt\": \"P1\", \"text\": \"\"}\n", refs()),
            "p.jsonl:1: the prompt does not end with the prompt of val.csv row 0 (line 2) (predictions and "
            "references out of step?)");
  FieldsEvalOptions none;
  none.fields = {};
  EXPECT_EQ(err(both, refs(), none), "no fields to score");
}

}  // namespace
}  // namespace lmforge::tasks
