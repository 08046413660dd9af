#pragma once
// `lmforge task`: a dataset through a prompt template (with few-shot examples) into a model, in
// one of two modes, with everything checked before any model work (docs/TASKS.md):
//   - generate (the reference GPT-J notebook's): micro-batches of prompts through HF generate() (greedy by
//     default, any HF decoding flag), the generated text turned into an answer and a label
//     (answer.h);
//   - loglikelihood (lm-evaluation-harness's multiple choice): each choice scored as the request
//     (prompt, target_delimiter + choice), acc = argmax of the sums, acc_norm = argmax of the sums
//     divided by the choice's length in characters.
// The choices of a row are the template's `choices` (rendered for the row), else the label names;
// choices[i] means label i.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "lmforge/generate/generation_config.h"
#include "lmforge/generate/language_model.h"
#include "lmforge/tasks/answer.h"
#include "lmforge/tasks/dataset.h"
#include "lmforge/tasks/fewshot.h"
#include "lmforge/tasks/loglikelihood.h"
#include "lmforge/tasks/template.h"

namespace lmforge {
class Tokenizer;
}

namespace lmforge::tasks {

enum class TaskMode { Generate, Loglikelihood };

// "generate" / "loglikelihood"; anything else is an error naming `flag`.
TaskMode parse_task_mode(std::string_view name, const std::string& flag = "--mode");

// One row, ready to run.
struct TaskExample {
  const Row* row = nullptr;
  std::string prompt;                // instruction + few-shot examples + query
  std::vector<std::string> choices;  // choices[i] means label i (without the target delimiter)
  TokenIds prompt_ids;               // generate mode: encode(prompt)
  MultipleChoiceResult encoded;      // loglikelihood mode: the choices' requests (scores unset)
};

struct PrepareOptions {
  TaskMode mode = TaskMode::Generate;
  int max_positions = 0;    // the model's context (n_positions)
  int sequence_length = 0;  // > 0: no row may need more tokens (prompt + generated, or the fed row)
  int new_tokens = 0;       // generate mode: tokens each row may generate (for the length check)
  int32_t prefix_token = 0; // loglikelihood mode: lm-eval's empty-context token
};

// Renders, tokenizes and checks every row before anything runs. One-line errors name the row
// ("row 17 (line 19): ..."): a prompt longer than --sequence_length (or, in generate mode, than the
// model's context) with its token count, an empty prompt, a choice that tokenizes to nothing, a
// row whose choices do not match the label names in number.
std::vector<TaskExample> prepare_examples(const Template& t, const FewshotSampler& sampler,
                                          const std::vector<const Row*>& rows, const Tokenizer& tokenizer,
                                          const std::vector<std::string>& label_names, const PrepareOptions& options);

// What a row produced.
struct ExampleResult {
  // generate mode
  TokenIds output_ids;  // the generated tokens, up to and including the first eos
  std::string output;   // their text as decoded (special tokens kept)
  std::string answer;   // parsed from the output (answer.h)
  // loglikelihood mode
  std::vector<double> ll;
  std::vector<bool> is_greedy;
  int pred_acc_norm = -1;
  // both: the predicted label (generate: the matched target, -1 when none; loglikelihood: acc's)
  int prediction = -1;
};

struct RunStats {
  int64_t examples = 0, prompt_tokens = 0, generated_tokens = 0;
  int64_t fed_tokens = 0;  // loglikelihood: tokens through the model, padding included
  int64_t forward_calls = 0;
  double seconds = 0;
};

// Called after each micro-batch: results[first, first + count) are now final (the rest are not).
using BatchDone = std::function<void(const std::vector<ExampleResult>& results, size_t first, size_t count)>;

struct GenerateRunOptions {
  int micro_batch_size = 12;
  GenerationConfig generation;  // num_return_sequences must be 1
  AnswerOptions answer;
  // Streaming (greedy search and sampling; beam search has no per-step tokens): called with each
  // example's generated tokens as they are chosen, up to and including its eos.
  std::function<void(size_t example, int32_t token)> on_token;
  // The index of examples[0]'s micro-batch in the whole run (a process given a shard of the rows):
  // with a seed, micro-batch b samples from seed + b x 0x9e3779b97f4a7c15 (synth's rule), so every
  // batch has its own stream and the split across processes changes nothing.
  size_t first_batch = 0;
};

// Generate mode: micro-batches of up to micro_batch_size prompts (left-padded, as HF batches
// them) through generate(). Results in example order.
std::vector<ExampleResult> run_generate(const LanguageModel& model, const Tokenizer& tokenizer,
                                        const std::vector<TaskExample>& examples, const GenerateRunOptions& options,
                                        RunStats* stats = nullptr, const BatchDone& on_batch = {});

// Loglikelihood mode: micro_batch_size examples per scoring call, their choices' rows batched
// micro_batch_size per forward pass, each shared prompt run once.
std::vector<ExampleResult> run_loglikelihood(const LanguageModel& model, const std::vector<TaskExample>& examples,
                                             int micro_batch_size, RunStats* stats = nullptr,
                                             const BatchDone& on_batch = {});

}  // namespace lmforge::tasks
