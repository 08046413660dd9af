// The binary under `mpirun -np 2|3` over the loopback: every sharded command's output is byte for
// byte what the same command prints without mpirun (sampling with a seed included), ranks past the
// work idle, and a rank that dies, hangs or has another model ends the job with a message naming
// it, in bounded time. Registered in ctest (label "mpi") only when MPI was found; skipped otherwise.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <regex>
#include <string>

#include "common/run.h"
#include "dist/mpirun.h"
#include "common/temp_dir_test.h"

namespace lmforge::test {
namespace {

namespace fs = std::filesystem;

const std::string kModel = std::string(LMFORGE_TEST_DATA) + "/models/gpt2-tiny";
const std::string kExamples = std::string(LMFORGE_SOURCE_DIR) + "/examples/tasks/";


class MpiCli : public TempDirTest {
 protected:
  MpiCli() : TempDirTest("lmforge-mpi-") {}
  void SetUp() override {
#ifndef LMFORGE_TEST_MPIRUN
    GTEST_SKIP() << "built without MPI";
#endif
    TempDirTest::SetUp();
  }
  // `args` without mpirun, then under mpirun with 2 and 3 ranks: the same exit code and stdout, and
  // (when given) the same bytes in the file `output`, which each run rewrites.
  void expect_same_as_one_process(const std::string& args, const std::string& output = "") {
    const RunResult one = run_cli(args);
    ASSERT_EQ(one.exit_code, 0) << one.err;
    const std::string file = output.empty() ? "" : read(output);
    for (int ranks : {2, 3}) {
      if (!output.empty()) fs::remove(output);
      const RunResult many = run_command(mpirun(ranks) + LMFORGE_CLI + " " + args + " </dev/null");
      ASSERT_EQ(many.exit_code, 0) << ranks << " ranks: " << many.err;
      EXPECT_EQ(many.out, one.out) << ranks << " ranks";
      if (!output.empty()) {
        EXPECT_EQ(read(output), file) << ranks << " ranks: " << output;
      }
    }
  }
  std::string prompts() { return write("prompts.csv", "prompt\nthe city\nthe new\npolice\nfarmers said\nthe school\n"); }
};

TEST_F(MpiCli, SynthSampledRowsAreTheOneProcessRows) {
  // 5 prompts x 3 samples in batches of 4: 4 batches, so 3 ranks get 2, 1 and 1.
  expect_same_as_one_process("synth --model " + kModel + " --prompt_file " + prompts() +
                             " --num_samples 3 --batch_size 4 --seed 7 --format jsonl --prefix '' --threads 1");
}

TEST_F(MpiCli, SynthRanksPastTheBatchesIdle) {
  // One batch of 2 rows: ranks 1 and 2 have nothing to do, and say so.
  const std::string args = "synth --model " + kModel + " --prompt_file " + prompts() +
                           " --num_samples 1 --batch_size 8 --do_sample false --prefix '' --format csv --threads 1";
  expect_same_as_one_process(args);
  const RunResult r = run_command(mpirun(3) + LMFORGE_CLI + " " + args);
  EXPECT_NE(r.err.find("rank 2 of 3 runs batches [1, 1) of 1 (idle"), std::string::npos) << r.err;
}

TEST_F(MpiCli, GenerateBatchesAreTheOneProcessOutput) {
  // 5 prompts in batches of 2: 3 batches, so 3 ranks get one each and 2 ranks 2 and 1. Every output
  // format, sampling with a seed (each batch's seed depends on its number only) and beam search.
  const std::string base = "generate --model " + kModel + " --prompt_file " + prompts() +
                           " --batch_size 2 --max_new_tokens 5 --threads 1 ";
  for (const std::string mode : {"", "--json --do_sample --seed 5 --num_return_sequences 2",
                                 "--num_beams 3 --num_return_sequences 2 --json", "--show_choices 2", "--fields"})
    expect_same_as_one_process(base + mode);
  // Without --batch_size the prompts are one batch: rank 0 runs it, the others idle.
  const RunResult r = run_command(mpirun(2) + LMFORGE_CLI + " generate --model " + kModel + " --prompt_file " +
                                  prompts() + " --max_new_tokens 3 --threads 1 </dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("rank 1 of 2 runs batches [1, 1) of 1 (idle"), std::string::npos) << r.err;
  // Prompts on standard input reach rank 0 alone.
  const RunResult in = run_command("echo hi | " + mpirun(2) + LMFORGE_CLI + " generate --model " + kModel);
  expect_job_exit(in, 1);
  EXPECT_NE(in.err.find("error: prompts: standard input reaches rank 0 alone under mpirun"), std::string::npos)
      << in.err;
}

TEST_F(MpiCli, PerplexityRowsAndCorpusFiguresAreTheOneProcessBits) {
  const std::string data = write("rows.csv", "headline_text\nthe city council met today\nhi\npolice said the man was "
                                             "arrested on friday\nfarmers protest\nthe new school opens\n");
  expect_same_as_one_process("eval perplexity --model " + kModel + " --data_path " + data + " --json --threads 1");
}

TEST_F(MpiCli, TaskPredictionsAndReportAreTheOneProcessOnes) {
  // Sampled answers (seeded) in micro-batches of 5: 3 batches of the sample's 12 rows. The report's
  // speed line differs from run to run, so --output and --json's scores are compared.
  const std::string out = path("predictions.jsonl");
  for (const std::string mode : {"generate --do_sample --seed 3 --output_length 4", "loglikelihood"})
    expect_same_as_one_process("task --model " + kModel + " --data " + kExamples + "entailment_sample.csv --template " +
                                   kExamples + "mnli_lm_eval.yaml --micro_batch_size 5 --threads 1 --output " + out +
                                   " --mode " + mode + " > /dev/null",
                               out);
}

// Timings differ from run to run; everything else must not.
std::string without_seconds(const std::string& text) {
  static const std::regex seconds(R"([0-9.]+ s\b|"seconds": [0-9.e+-]+|\| Duration \(seconds\).*)");
  return std::regex_replace(text, seconds, "<time>");
}

TEST_F(MpiCli, QuantizeSearchesOnTheOneProcessFiguresAndWritesTheSameFolder) {
  // A tolerance no trial meets at first, so the search tries several configurations, each scored
  // on rows split across ranks: perplexity of held-out rows, then accuracy of labelled rows.
  const std::string news = write("news.csv", "publish_date,headline_text\n20030201,the jury said friday\n"
                                             "20030202,of atlanta recent primary election\n20030203,produced no "
                                             "evidence that any\n20030204,took place in the city\n20030205,the grand "
                                             "jury commented on\n20030206,of other topics among them\n");
  const std::string labels = write("labels.csv", "prompt,label\nthe jury said,yes\nthe city,no\nthe grand jury,yes\n"
                                                 "other topics,no\nfriday,yes\n");
  for (const std::string metric : {"--data_path " + news + " --validation_fraction 0.5 --tolerance 0.00001",
                                   "--metric accuracy --labels_path " + labels + " --tolerance 0.00001"}) {
    const std::string args = "quantize --model " + kModel + " --max_trials 3 --threads 1 " + metric;
    const RunResult one = run_cli(args + " --save_path " + path("one"));
    ASSERT_EQ(one.exit_code, 0) << one.err;
    for (int ranks : {2, 3}) {
      const std::string save = path("np" + std::to_string(ranks));
      const RunResult many = run_command(mpirun(ranks) + LMFORGE_CLI + " " + args + " --save_path " + save + " </dev/null");
      ASSERT_EQ(many.exit_code, 0) << ranks << " ranks: " << many.err;
      EXPECT_EQ(without_seconds(many.out), without_seconds(one.out)) << ranks << " ranks";
      EXPECT_EQ(read(save + "/model.safetensors"), read(path("one") + "/model.safetensors")) << ranks << " ranks";
      EXPECT_EQ(without_seconds(read(save + "/tuning_history.json")),
                without_seconds(read(path("one") + "/tuning_history.json")))
          << ranks << " ranks";
      EXPECT_NE(many.err.find("lmforge quantize: rank 1 of " + std::to_string(ranks) + " runs"), std::string::npos)
          << many.err;
    }
  }
}

TEST_F(MpiCli, AKilledRankFailsTheJobNamingIt) {
  const auto t0 = std::chrono::steady_clock::now();
  const RunResult r = run_command(mpirun(2, "LMFORGE_DIST_TEST_KILL_RANK=1") + LMFORGE_CLI + " synth --model " + kModel +
                                  " --prompt_file " + prompts() + " --batch_size 2 --threads 1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 30);
  EXPECT_NE(r.err.find("rank 1"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");  // no partial output
}

TEST_F(MpiCli, AStuckRankTimesOutNamingIt) {
  const auto t0 = std::chrono::steady_clock::now();
  const RunResult r = run_command(mpirun(3, "LMFORGE_DIST_TEST_HANG_RANK=2 LMFORGE_DIST_TIMEOUT=2") + LMFORGE_CLI +
                                  " eval perplexity --model " + kModel + " --data_path " +
                                  write("rows.csv", "headline_text\nthe city\nthe new school\npolice said\n") + " --threads 1");
  expect_job_exit(r, 1);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 30);
  EXPECT_NE(r.err.find("error: perplexity rows: no results from rank 2 within 2 s (LMFORGE_DIST_TIMEOUT)"),
            std::string::npos)
      << r.err;
}

TEST_F(MpiCli, ARankWithAnotherModelFolderIsOneErrorNamingIt) {
  const fs::path other = dir_ / "other";
  fs::copy(kModel, other, fs::copy_options::recursive);
  write("other/config.json", read(other / "config.json") + "\n");
  // Rank 1 is given the other folder; rank 0 the fixture.
  const std::string per_rank = "sh -c 'if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then m=" + other.string() + "; else m=" +
                               kModel + "; fi; exec " + LMFORGE_CLI + " eval perplexity --model $m --text \"the city\"'";
  const RunResult r = run_command(mpirun(2) + per_rank);
  expect_job_exit(r, 1);
  EXPECT_NE(r.err.find("error: --model: rank 1's model folder '" + other.string() + "' is not rank 0's"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("error:"), r.err.rfind("error:")) << "one error line: " << r.err;
}

TEST_F(MpiCli, ACommandThatDoesNotShareItsWorkIsRefusedOnce) {
  const RunResult r = run_command(mpirun(2) + LMFORGE_CLI + " tokenize --model " + kModel + " --text hi");
  expect_job_exit(r, 2);
  EXPECT_NE(r.err.find("error: lmforge tokenize does not split its work across mpirun ranks"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("error:"), r.err.rfind("error:")) << "one error line: " << r.err;
  EXPECT_EQ(r.out, "");
  const RunResult b = run_command(mpirun(2) + LMFORGE_CLI + " generate --model " + kModel +
                                  " --benchmark_mode --benchmark_seq_length 2");
  expect_job_exit(b, 2);
  EXPECT_NE(b.err.find("error: lmforge generate --benchmark_mode times one process; run it without mpirun"),
            std::string::npos)
      << b.err;
}

}  // namespace
}  // namespace lmforge::test
