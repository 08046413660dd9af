// Prompt templates: patterns, filters, template files (examples/tasks and hand-written ones), and
// their errors (rules in include/lmforge/tasks/template.h). Expected strings are written by hand
// from the seed notebook's entailment_prompt and lm-eval 0.4's GLUE mnli doc_to_text.
#include "lmforge/tasks/template.h"

#include <gtest/gtest.h>

#include "lmforge/error.h"
#include "tasks/tasks_test_util.h"

namespace lmforge::tasks {
namespace {

Row row(std::vector<std::pair<std::string, std::string>> fields, int label = kNoLabel, int64_t id = 3,
        int64_t line = 5) {
  Row r;
  r.id = id;
  r.line = line;
  r.fields = std::move(fields);
  r.label = label;
  return r;
}

TEST(Pattern, FieldsEscapesAndFilters) {
  const Row r = row({{"a", "x"}, {"b", "  Hi There  "}});
  EXPECT_EQ(render("{a}-{b}", r, "t"), "x-  Hi There  ");
  EXPECT_EQ(render("{{a}} {{{a}}}", r, "t"), "{a} {x}");
  EXPECT_EQ(render("[{b|strip}] [{b|lstrip}] [{b|rstrip}]", r, "t"), "[Hi There] [Hi There  ] [  Hi There]");
  EXPECT_EQ(render("{b|strip|lower} {b|strip|upper} { a }", r, "t"), "hi there HI THERE x");
  EXPECT_EQ(render("{b|strip|period}|{b|period}", r, "t"), "Hi There.|  Hi There  .");
  EXPECT_EQ(render("no fields", r, "t"), "no fields");
  EXPECT_EQ(pattern_fields("{a} {{b}} {c|strip} {a}", "t"), (std::vector<std::string>{"a", "c", "a"}));
}

TEST(Pattern, MissingFieldNamesItAndTheAvailableOnes) {
  const Row r = row({{"premise", "p"}, {"label", "neutral"}});
  EXPECT_EQ(error_of([&] { render("{premise} {hypothesis}", r, "v1.yaml: text"); }),
            "v1.yaml: text: field 'hypothesis' is not in row 3 (line 5); available: premise, label");
}

TEST(Pattern, MalformedPatterns) {
  const Row r = row({{"a", "x"}});
  EXPECT_EQ(error_of([&] { pattern_fields("ab {a", "t"); }),
            "t: '{' at character 4 is never closed (write {{ for a literal '{')");
  EXPECT_EQ(error_of([&] { pattern_fields("{a {b}", "t"); }),
            "t: '{' at character 1 is never closed (write {{ for a literal '{')");
  EXPECT_EQ(error_of([&] { pattern_fields("a} b", "t"); }),
            "t: '}' at character 2 closes nothing (write }} for a literal '}')");
  EXPECT_EQ(error_of([&] { pattern_fields("{ }", "t"); }), "t: empty placeholder '{ }' (write {{ for a literal '{')");
  EXPECT_EQ(error_of([&] { render("{a|title}", r, "t"); }),
            "t: unknown filter 'title' in '{a|title}' (filters: strip, lstrip, rstrip, lower, upper, period)");
}

// entailment_prompt(hypothesis, premise) of the seed: the query keeps "target: " with its space.
TEST(Templates, SeedEntailmentPromptText) {
  const Template t = load_template(kExamples + "mnli_seed_v1.yaml");
  const Row r = row({{"premise", "Hello, welcome to the country."}, {"hypothesis", "The person is leaving."}});
  EXPECT_EQ(render_text(t, r), "mnli hypothesis: The person is leaving. premise: Hello, welcome to the country. target: ");
  EXPECT_EQ(t.instruction, "How are the statements related?\n");
  EXPECT_EQ(t.target_delimiter, "");
  EXPECT_EQ(t.fewshot_delimiter, ".\n");
  EXPECT_EQ(render_choices(t, r), (std::vector<std::string>{"entailment", "neutral", "contradiction"}));
  // mnli_data_to_example: the label's name, then ".\n" (the few-shot delimiter) follows.
  const Row ex = row({{"premise", "Hey there."}, {"hypothesis", "Goodbye."}, {"label", "contradiction"}}, 2);
  EXPECT_EQ(render_text(t, ex) + t.target_delimiter + render_target(t, ex, mnli_label_names()) + t.fewshot_delimiter,
            "mnli hypothesis: Goodbye. premise: Hey there. target: contradiction.\n");
}

TEST(Templates, SeedVariantsLoad) {
  const Template v2 = load_template(kExamples + "mnli_seed_v2.yaml");
  EXPECT_EQ(v2.instruction, "Tell me if the next statements entailment, contradiction, neutral.\n");
  EXPECT_EQ(v2.example_prefix, "Example - ");
  ASSERT_EQ(v2.examples.size(), 2u);
  EXPECT_EQ(v2.examples[0].label, 2);
  EXPECT_EQ(*v2.examples[1].get("hypothesis"), "Hello.");
  const Template v3 = load_template(kExamples + "mnli_seed_v3.yaml");
  EXPECT_EQ(v3.example_prefix, "Tell me if the statements entailment, contradiction, neutral.\n");
  EXPECT_EQ(v3.query_prefix, v3.example_prefix);
  ASSERT_EQ(v3.examples.size(), 3u);
  EXPECT_EQ(v3.examples[2].label, 1);
  const Template v4 = load_template(kExamples + "mnli_seed_v4.yaml");
  EXPECT_EQ(v4.fewshot_ids, (std::vector<int64_t>{0, 2, 8}));
  EXPECT_TRUE(v4.examples.empty());
}

// lm-eval 0.4 glue/mnli doc_to_text: hypothesis stripped, "." added unless it ends with ".".
TEST(Templates, LmEvalMnliDocToText) {
  const Template t = load_template(kExamples + "mnli_lm_eval.yaml");
  EXPECT_EQ(render_text(t, row({{"premise", "The new rights are nice enough"},
                                {"hypothesis", "Everyone really likes the newest benefits "}})),
            "The new rights are nice enough\nQuestion: Everyone really likes the newest benefits. True, False or "
            "Neither?\nAnswer:");
  EXPECT_EQ(render_text(t, row({{"premise", "P"}, {"hypothesis", "Is it silver?"}})),
            "P\nQuestion: Is it silver?. True, False or Neither?\nAnswer:");
  EXPECT_EQ(render_text(t, row({{"premise", "P"}, {"hypothesis", " He left early.  "}})),
            "P\nQuestion: He left early. True, False or Neither?\nAnswer:");
  EXPECT_EQ(t.target_delimiter, " ");
  EXPECT_EQ(t.fewshot_delimiter, "\n\n");
  EXPECT_EQ(t.choices, (std::vector<std::string>{"True", "Neither", "False"}));
  // A few-shot example's target is its label's choice.
  EXPECT_EQ(render_target(t, row({{"premise", "P"}, {"hypothesis", "H"}}, 1), mnli_label_names()), "Neither");
}

TEST(Templates, TargetRules) {
  Template t = inline_template("{q}");
  const Row r = row({{"q", "2+2"}, {"answer", "4"}, {"label", "four"}}, 0);
  EXPECT_EQ(render_target(t, r, {"four", "five"}), "four");  // no choices: the label's name
  t.target = "{answer}";
  EXPECT_EQ(render_target(t, r, {}), "4");
  t.target.clear();
  const Row unlabeled = row({{"q", "x"}, {"label", ""}});
  EXPECT_EQ(error_of([&] { render_target(t, unlabeled, {"four"}); }),
            "inline: row 3 (line 5) has no gold label, so it cannot be shown as a few-shot example");
  t.choices = {"A"};
  EXPECT_EQ(error_of([&] { render_target(t, row({{"q", "x"}}, 1), {"a", "b"}); }),
            "inline: row 3 (line 5) has label index 1 but only 1 choices");
}

TEST(Templates, CheckFieldsBeforeAnyWork) {
  const Template t = load_template(kExamples + "mnli_seed_v1.yaml");
  EXPECT_NO_THROW(check_fields(t, {"premise", "hypothesis", "label"}, "dev.tsv"));
  EXPECT_EQ(error_of([&] { check_fields(t, {"sentence1", "premise", "label"}, "dev.tsv"); }),
            kExamples + "mnli_seed_v1.yaml: key 'text' uses field 'hypothesis', which dev.tsv does not have; "
                        "available: sentence1, premise, label");
}

TEST(Templates, HandWrittenFile) {
  const Template t = parse_template(
      "# a custom task\n"
      "name: qa\n"
      "description: free text\n"
      "instruction: \"Answer the questions.\\n\\n\"\n"
      "text: \"Q: {question}\\nA:\"\n"
      "target: \"{answer}\"\n"
      "fewshot_delimiter: \"\\n###\\n\"\n"
      "examples:\n"
      "  - {question: \"2+2?\", answer: \"4\"}\n"
      "fewshot_ids: [0]\n",
      "qa.yaml");
  EXPECT_EQ(t.source, "qa.yaml");
  EXPECT_EQ(t.instruction, "Answer the questions.\n\n");
  EXPECT_EQ(t.text, "Q: {question}\nA:");
  EXPECT_EQ(t.target_delimiter, " ");  // lm-eval's default
  EXPECT_EQ(t.fewshot_delimiter, "\n###\n");
  ASSERT_EQ(t.examples.size(), 1u);
  EXPECT_EQ(render_target(t, t.examples[0], {}), "4");
  EXPECT_EQ(inline_template("{premise}").fewshot_delimiter, "\n\n");
  // A flag's \n, \t, \\ are escapes; other backslashes stay.
  EXPECT_EQ(inline_template(R"({premise}\nQuestion:\t{hypothesis} \\n \d)").text, "{premise}\nQuestion:\t{hypothesis} \\n \\d");
}

TEST(Templates, FileErrors) {
  EXPECT_EQ(error_of([] { parse_template("txt: \"{a}\"\n", "t.yaml"); }),
            "t.yaml: unknown key 'txt' (keys: name, description, instruction, example_prefix, query_prefix, text, "
            "target, choices, target_delimiter, fewshot_delimiter, label_names, examples, fewshot_ids)");
  EXPECT_EQ(error_of([] { parse_template("instruction: hi\n", "t.yaml"); }),
            "t.yaml: no 'text' key (the row's prompt pattern, e.g. text: \"{premise}\")");
  EXPECT_EQ(error_of([] { parse_template("text: [a, b]\n", "t.yaml"); }), "t.yaml: key 'text': expected a string");
  EXPECT_EQ(error_of([] { parse_template("text: a\nchoices: yes\n", "t.yaml"); }),
            "t.yaml: key 'choices': expected a list of strings");
  EXPECT_EQ(error_of([] { parse_template("text: a\nfewshot_ids: [0, -2]\n", "t.yaml"); }),
            "t.yaml: key 'fewshot_ids': expected row ids (integers from 0), got '-2'");
  EXPECT_EQ(error_of([] { parse_template("text: \"{a\"\n", "t.yaml"); }),
            "t.yaml: key 'text': '{' at character 1 is never closed (write {{ for a literal '{')");
  EXPECT_EQ(error_of([] { parse_template("text: a\nchoices: [\"{x|bad}\"]\n", "t.yaml"); }),
            "t.yaml: key 'choices': unknown filter 'bad' in '{x|bad}' (filters: strip, lstrip, rstrip, lower, upper, "
            "period)");
  EXPECT_EQ(error_of([] { parse_template("- a\n", "t.yaml"); }),
            "t.yaml: a template file is a YAML map (text: \"...\", ...)");
  EXPECT_EQ(error_of([] {
              parse_template("text: a\nlabel_names: [yes, no]\nexamples:\n  - {q: x, label: maybe}\n", "t.yaml");
            }),
            "t.yaml: key 'examples': example 0: label 'maybe' is not in label_names (yes, no)");
  const std::string yaml = error_of([] { parse_template("text: [a\n", "t.yaml"); });
  EXPECT_EQ(yaml.rfind("t.yaml:", 0), 0u) << yaml;
  EXPECT_NE(yaml.find("invalid YAML"), std::string::npos) << yaml;
  EXPECT_EQ(error_of([] { load_template("/nonexistent/t.yaml"); }), "/nonexistent/t.yaml: no such template file");
}

}  // namespace
}  // namespace lmforge::tasks
