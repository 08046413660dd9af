// lmforge task: prompts built and checked up front, then generate mode (micro-batches through
// HF generate(), answers parsed) or loglikelihood mode (lm-eval multiple choice). See task_runner.h.
#include "lmforge/tasks/task_runner.h"

#include <algorithm>
#include <chrono>

#include "lmforge/error.h"
#include "lmforge/generate/generate.h"
#include "lmforge/tokenizer/tokenizer.h"

namespace lmforge::tasks {

TaskMode parse_task_mode(std::string_view name, const std::string& flag) {
  if (name == "generate") return TaskMode::Generate;
  if (name == "loglikelihood") return TaskMode::Loglikelihood;
  throw Error(flag + ": expected generate or loglikelihood, got '" + std::string(name) + "'");
}

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The row's choices: the template's, rendered, else the label names; one per label.
std::vector<std::string> row_choices(const Template& t, const Row& row, const std::vector<std::string>& label_names) {
  std::vector<std::string> choices = t.choices.empty() ? label_names : render_choices(t, row);
  if (choices.empty())
    throw Error(t.source + ": the template has no choices and the dataset no label names; give choices or --label_names");
  if (!label_names.empty() && choices.size() != label_names.size())
    throw Error(t.source + ": " + std::to_string(choices.size()) + " choices for " + std::to_string(label_names.size()) +
                " labels (" + [&] {
                  std::string s;
                  for (const auto& n : label_names) s += (s.empty() ? "" : ", ") + n;
                  return s;
                }() + "): choices[i] must be the answer for label i");
  return choices;
}

void check_generate_length(const TaskExample& e, const PrepareOptions& o) {
  const int n = static_cast<int>(e.prompt_ids.size());
  if (n == 0) throw Error(e.row->name() + ": the prompt is empty");
  if (o.sequence_length > 0 && n + o.new_tokens > o.sequence_length)
    throw Error(e.row->name() + ": the prompt is " + std::to_string(n) + " tokens; with " + std::to_string(o.new_tokens) +
                " new tokens that is more than --sequence_length " + std::to_string(o.sequence_length));
  if (n + o.new_tokens > o.max_positions)
    throw Error(e.row->name() + ": the prompt is " + std::to_string(n) + " tokens; with " + std::to_string(o.new_tokens) +
                " new tokens that is more than the model's context of " + std::to_string(o.max_positions) + " positions");
}

// lm-eval feeds (context + continuation)[-(max_length + 1):][:-1]: without --sequence_length the
// model's window truncates the context on the left, as lm-eval does; with it, a row that needs
// more is refused.
void check_loglikelihood_length(const TaskExample& e, const PrepareOptions& o) {
  for (size_t i = 0; i < e.encoded.encoded.size(); ++i) {
    const EncodedPair& p = e.encoded.encoded[i];
    const int fed = static_cast<int>(p.context_enc.size() + p.continuation_enc.size()) - 1;
    if (o.sequence_length > 0 && fed > o.sequence_length)
      throw Error(e.row->name() + ": the prompt and the choice '" + e.choices[i] + "' are " + std::to_string(fed + 1) +
                  " tokens, more than --sequence_length " + std::to_string(o.sequence_length) + " + 1");
    if (static_cast<int>(p.continuation_enc.size()) > o.max_positions)
      throw Error(e.row->name() + ": the choice '" + e.choices[i] + "' is " + std::to_string(p.continuation_enc.size()) +
                  " tokens, more than the model's context of " + std::to_string(o.max_positions));
  }
}

}  // namespace

std::vector<TaskExample> prepare_examples(const Template& t, const FewshotSampler& sampler,
                                          const std::vector<const Row*>& rows, const Tokenizer& tokenizer,
                                          const std::vector<std::string>& label_names, const PrepareOptions& o) {
  std::vector<TaskExample> out;
  out.reserve(rows.size());
  for (const Row* row : rows) {
    TaskExample e;
    e.row = row;
    e.prompt = build_prompt(t, sampler, *row);
    e.choices = row_choices(t, *row, label_names);
    if (o.mode == TaskMode::Generate) {
      e.prompt_ids = tokenizer.encode(e.prompt);
      check_generate_length(e, o);
    } else {
      e.encoded = encode_multiple_choice(tokenizer, {e.prompt, e.choices}, t.target_delimiter, o.prefix_token, row->name());
      check_loglikelihood_length(e, o);
    }
    out.push_back(std::move(e));
  }
  return out;
}

namespace {

// A row's generated tokens: from the end of the (padded) prompt up to and including its first
// eos; what follows is HF's padding of a finished row.
TokenIds new_tokens(const std::vector<int32_t>& sequence, int prompt_length, const std::vector<int32_t>& eos) {
  TokenIds out;
  for (size_t i = static_cast<size_t>(prompt_length); i < sequence.size(); ++i) {
    out.push_back(sequence[i]);
    if (std::find(eos.begin(), eos.end(), sequence[i]) != eos.end()) break;
  }
  return out;
}

}  // namespace

std::vector<ExampleResult> run_generate(const LanguageModel& model, const Tokenizer& tokenizer,
                                        const std::vector<TaskExample>& examples, const GenerateRunOptions& options,
                                        RunStats* stats, const BatchDone& on_batch) {
  if (options.micro_batch_size < 1) throw Error("--micro_batch_size must be at least 1");
  if (options.generation.num_return_sequences != 1)
    throw Error("--num_return_sequences: a task scores one answer per row, so it must be 1");
  const AnswerParser parser(options.answer);
  GenerationCallbacks callbacks;
  callbacks.decode = [&tokenizer](const std::vector<int32_t>& ids) { return tokenizer.decode(ids); };
  std::vector<ExampleResult> out(examples.size());
  RunStats local;
  RunStats& s = stats ? *stats : local;
  const auto t0 = Clock::now();
  const size_t mb = static_cast<size_t>(options.micro_batch_size);
  for (size_t first = 0; first < examples.size(); first += mb) {
    const size_t count = std::min(mb, examples.size() - first);
    std::vector<std::vector<int32_t>> prompts;
    for (size_t i = first; i < first + count; ++i) prompts.push_back(examples[i].prompt_ids);
    std::vector<bool> done(count, false);
    if (options.on_token)
      callbacks.on_tokens = [&](const std::vector<int32_t>& step) {
        const auto& eos = options.generation.eos_token_id;
        for (size_t i = 0; i < count; ++i) {
          if (done[i]) continue;  // what follows a row's eos is HF's padding
          options.on_token(first + i, step[i]);
          done[i] = std::find(eos.begin(), eos.end(), step[i]) != eos.end();
        }
      };
    GenerationConfig config = options.generation;
    if (config.seed) config.seed = *config.seed + (options.first_batch + first / mb) * 0x9e3779b97f4a7c15ull;
    const GenerationOutput g = generate(model, prompts, config, callbacks);
    for (size_t i = 0; i < count; ++i) {
      const TaskExample& e = examples[first + i];
      ExampleResult& r = out[first + i];
      r.output_ids = new_tokens(g.sequences[i], g.prompt_length, options.generation.eos_token_id);
      r.output = tokenizer.decode(r.output_ids);
      std::vector<std::string> targets;
      for (const std::string& c : e.choices) targets.push_back(python_strip(c));
      const ParsedAnswer a = parser.parse(tokenizer.decode(r.output_ids, /*skip_special_tokens=*/true), targets);
      r.answer = a.answer;
      r.prediction = a.prediction;
      s.prompt_tokens += static_cast<int64_t>(e.prompt_ids.size());
      s.generated_tokens += static_cast<int64_t>(r.output_ids.size());
    }
    s.examples += static_cast<int64_t>(count);
    s.seconds = seconds_since(t0);
    if (on_batch) on_batch(out, first, count);
  }
  return out;
}

std::vector<ExampleResult> run_loglikelihood(const LanguageModel& model, const std::vector<TaskExample>& examples,
                                             int micro_batch_size, RunStats* stats, const BatchDone& on_batch) {
  if (micro_batch_size < 1) throw Error("--micro_batch_size must be at least 1");
  std::vector<ExampleResult> out(examples.size());
  RunStats local;
  RunStats& s = stats ? *stats : local;
  ScoreOptions so;
  so.batch_size = micro_batch_size;
  const auto t0 = Clock::now();
  const size_t mb = static_cast<size_t>(micro_batch_size);
  for (size_t first = 0; first < examples.size(); first += mb) {
    const size_t count = std::min(mb, examples.size() - first);
    std::vector<LLRequest> requests;
    for (size_t i = first; i < first + count; ++i)
      for (const EncodedPair& p : examples[i].encoded.encoded) requests.push_back({p.context_enc, p.continuation_enc});
    ScoreStats ss;
    std::vector<LLResult> scores = score_requests(model, requests, so, &ss);
    size_t next = 0;
    for (size_t i = first; i < first + count; ++i) {
      MultipleChoiceResult mc = examples[i].encoded;
      const size_t n = mc.encoded.size();
      set_choice_scores(mc, {std::make_move_iterator(scores.begin() + static_cast<std::ptrdiff_t>(next)),
                             std::make_move_iterator(scores.begin() + static_cast<std::ptrdiff_t>(next + n))});
      next += n;
      ExampleResult& r = out[i];
      r.ll = mc.ll;
      for (const LLResult& x : mc.scores) r.is_greedy.push_back(x.is_greedy);
      r.prediction = mc.pred_acc;
      r.pred_acc_norm = mc.pred_acc_norm;
      s.prompt_tokens += static_cast<int64_t>(mc.encoded.front().context_enc.size());
    }
    s.examples += static_cast<int64_t>(count);
    s.fed_tokens += ss.fed_tokens;
    s.forward_calls += ss.forward_calls;
    s.seconds = seconds_since(t0);
    if (on_batch) on_batch(out, first, count);
  }
  return out;
}

}  // namespace lmforge::tasks
