// Data-parallel `finetune` under `mpirun -np 1|2|3` (docs/SCALE_OUT.md): the reference is our own
// single-process run with the same global batch (gradient_accumulation_steps x ranks), which is the
// property promised. Tolerances, from fp32 gradients summed in another order (one process adds the
// micro-batches in turn, MPI adds the ranks' partial sums): every logged loss, eval_loss and
// grad_norm within 1e-5 relative, every final weight within 1e-4 absolute (AdamW divides each
// gradient element by its running RMS, so an element whose gradient is mostly rounding moves by a
// visibly different fraction of lr = 0.02: measured up to 3e-5 after 4-6 steps); under mpirun with
// one rank, the same bytes. Registered in ctest as dist_mpi_finetune (label "mpi") when MPI was found.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/fixtures.h"
#include "common/run.h"
#include "dist/mpirun.h"
#include "common/temp_dir_test.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/io/tensor.h"
#include "train/news_csv.h"

namespace lmforge::test {
namespace {

namespace fs = std::filesystem;

constexpr double kLossRel = 1e-5;
constexpr double kWeightAbs = 1e-4;


std::vector<nlohmann::json> metrics_of(const fs::path& dir) {
  std::vector<nlohmann::json> out;
  std::ifstream in(dir / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

void expect_close_rel(double a, double b, const std::string& what) {
  EXPECT_LE(std::abs(a - b), kLossRel * std::abs(b)) << what << ": " << a << " vs " << b;
}

// Same records (type, step) in the same order; losses, eval losses and gradient norms within kLossRel.
void expect_same_metrics(const fs::path& got, const fs::path& want) {
  const auto g = metrics_of(got), w = metrics_of(want);
  ASSERT_EQ(g.size(), w.size()) << got;
  ASSERT_FALSE(w.empty());
  for (size_t i = 0; i < w.size(); ++i) {
    const std::string at = got.string() + " record " + std::to_string(i);
    EXPECT_EQ(g[i]["type"], w[i]["type"]) << at;
    EXPECT_EQ(g[i]["step"], w[i]["step"]) << at;
    for (const char* key : {"loss", "eval_loss", "grad_norm", "lr", "epoch"})
      if (w[i].contains(key)) expect_close_rel(g[i][key].get<double>(), w[i][key].get<double>(), at + " " + key);
  }
}

// Every tensor of the two weight files within kWeightAbs; returns the largest difference seen.
double expect_same_weights(const fs::path& got, const fs::path& want) {
  const Checkpoint g = Checkpoint::open_safetensors(got), w = Checkpoint::open_safetensors(want);
  EXPECT_EQ(g.tensors().size(), w.tensors().size());
  double worst = 0;
  for (const auto& [name, wt] : w.tensors()) {
    std::vector<float> a(static_cast<size_t>(wt.numel())), b(a.size());
    const TensorView& gt = g.get(name);
    EXPECT_EQ(gt.shape, wt.shape) << name;
    if (gt.numel() != wt.numel()) continue;
    to_float32(gt, a.data());
    to_float32(wt, b.data());
    for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, static_cast<double>(std::abs(a[i] - b[i])));
  }
  EXPECT_LE(worst, kWeightAbs) << got;
  return worst;
}

class MpiFinetune : public TempDirTest {
 protected:
  MpiFinetune() : TempDirTest("lmforge-mpi-ft-") {}
  void SetUp() override {
#ifndef LMFORGE_TEST_MPIRUN
    GTEST_SKIP() << "built without MPI";
#endif
    TempDirTest::SetUp();
    csv_ = write_news_csv(dir_, 120).string();
  }
  // A 1-layer, 16-wide model from scratch, micro-batches of 4, an eval in the middle and at the end.
  std::string full_args(const std::string& save, int accumulation, int steps = 4, int save_steps = 0) const {
    return "finetune --init random --tokenizer " + (data_dir() / "tokenizer").string() +
           " --n_layer 1 --n_embd 16 --n_head 2 --n_positions 32 --data_path " + csv_ + " --max_rows 120 --lr 0.02" +
           " --per_device_train_batch_size 4 --gradient_accumulation_steps " + std::to_string(accumulation) +
           " --max_steps " + std::to_string(steps) + " --logging_steps 1 --eval_steps 2 --evaluation_strategy steps" +
           " --save_steps " + std::to_string(save_steps) + " --threads 1 --save_path " + save;
  }
  void run_ok(const std::string& command) {
    const RunResult r = run_command(command + " </dev/null");
    ASSERT_EQ(r.exit_code, 0) << command << "\n" << r.err;
    // A distributed run says what its collectives cost (docs/SCALE_OUT.md, "Measured").
    if (command.find("mpirun") != std::string::npos && command.find(" -np 1 ") == std::string::npos)
      EXPECT_NE(r.err.find("data parallel over "), std::string::npos) << r.err;
  }
  std::string csv_;
};

TEST_F(MpiFinetune, FullFineTuningAtOneTwoThreeRanksIsOneProcessWithTheSameGlobalBatch) {
  const fs::path one = dir_ / "one";
  run_ok(std::string(LMFORGE_CLI) + " " + full_args(one.string(), 6));
  // One rank under mpirun: the same bytes.
  run_ok(mpirun(1) + LMFORGE_CLI + " " + full_args(path("np1"), 6));
  EXPECT_EQ(read(dir_ / "np1" / "model.safetensors"), read(one / "model.safetensors"));
  expect_same_metrics(dir_ / "np1", one);
  // Two ranks x 3 micro-batches.
  run_ok(mpirun(2) + LMFORGE_CLI + " " + full_args(path("np2"), 3));
  expect_same_metrics(dir_ / "np2", one);
  std::cerr << "np2: largest weight difference " << expect_same_weights(dir_ / "np2" / "model.safetensors", one / "model.safetensors") << "\n";
  // Three ranks x 2, each in a folder of its own with a relative --save_path: only rank 0 writes.
  for (int r : {0, 1, 2}) fs::create_directories(dir_ / ("rank" + std::to_string(r)));
  run_ok(mpirun(3) + "sh -c 'cd " + dir_.string() + "/rank$OMPI_COMM_WORLD_RANK && exec " + LMFORGE_CLI + " " +
         full_args("out", 2) + "'");
  expect_same_metrics(dir_ / "rank0" / "out", one);
  std::cerr << "np3: largest weight difference "
            << expect_same_weights(dir_ / "rank0" / "out" / "model.safetensors", one / "model.safetensors") << "\n";
  for (const char* f : {"train_config.yml", "lmforge_output.json", "loss_curve.png", "eval_results.json", "vocab.json"})
    EXPECT_TRUE(fs::exists(dir_ / "rank0" / "out" / f)) << f;
  EXPECT_TRUE(fs::is_empty(dir_ / "rank1")) << "rank 1 wrote files";
  EXPECT_TRUE(fs::is_empty(dir_ / "rank2")) << "rank 2 wrote files";

  // ZeRO stage 1: each rank updates its slice of the parameters; the same tolerances hold. At 3
  // ranks the test hook sends the collectives through their chunked path (past MPI's int counts).
  run_ok(mpirun(2) + LMFORGE_CLI + " " + full_args(path("zero1_np2"), 3) + " --zero_stage 1");
  run_ok(mpirun(3, "LMFORGE_DIST_TEST_MAX_COUNT=100000") + LMFORGE_CLI + " " + full_args(path("zero1_np3"), 2) +
         " --zero_stage 1");
  for (const char* name : {"zero1_np2", "zero1_np3"}) {
    expect_same_metrics(dir_ / name, one);
    std::cerr << name << ": largest weight difference "
              << expect_same_weights(dir_ / name / "model.safetensors", one / "model.safetensors") << "\n";
  }
  EXPECT_NE(read(dir_ / "zero1_np2" / "train_config.yml").find("zero_stage: 1"), std::string::npos);
}

TEST_F(MpiFinetune, LoraWithDropoutAtTwoRanksIsOneProcess) {
  const std::string lora = "finetune --model " + model_dir("gpt2-tiny").string() + " --tokenizer " +
                           (data_dir() / "tokenizer").string() + " --data_path " + csv_ +
                           " --max_rows 120 --lr 0.03 --per_device_train_batch_size 4 --max_steps 4 --logging_steps 1" +
                           " --save_steps 0 --threads 1 --lora --lora_r 4 --lora_dropout 0.1 --save_path ";
  run_ok(std::string(LMFORGE_CLI) + " " + lora + path("one") + " --gradient_accumulation_steps 4");
  run_ok(mpirun(2) + LMFORGE_CLI + " " + lora + path("np2") + " --gradient_accumulation_steps 2");
  expect_same_metrics(dir_ / "np2", dir_ / "one");
  std::cerr << "LoRA np2: largest weight difference "
            << expect_same_weights(dir_ / "np2" / "adapter_model.safetensors", dir_ / "one" / "adapter_model.safetensors")
            << "\n";
  // ZeRO stage 1 slices the adapter's parameters.
  run_ok(mpirun(2) + LMFORGE_CLI + " " + lora + path("zero1") + " --gradient_accumulation_steps 2 --zero_stage 1");
  expect_same_metrics(dir_ / "zero1", dir_ / "one");
  std::cerr << "LoRA zero1 np2: largest weight difference "
            << expect_same_weights(dir_ / "zero1" / "adapter_model.safetensors", dir_ / "one" / "adapter_model.safetensors")
            << "\n";
}

TEST_F(MpiFinetune, ACheckpointOfTwoRanksResumesAtThreeRanksAndInOneProcess) {
  const fs::path one = dir_ / "one";
  run_ok(std::string(LMFORGE_CLI) + " " + full_args(one.string(), 6, 6, 3));
  // Two ranks write checkpoint-3 (the run goes on, but the checkpoint is what a stop at step 3 saves).
  run_ok(mpirun(2) + LMFORGE_CLI + " " + full_args(path("np2"), 3, 6, 3));
  ASSERT_TRUE(fs::exists(dir_ / "np2" / "checkpoint-3"));
  auto resume_from_np2 = [&](const std::string& name, int accumulation) {
    fs::create_directories(dir_ / name);
    fs::copy(dir_ / "np2" / "checkpoint-3", dir_ / name / "checkpoint-3", fs::copy_options::recursive);
    fs::copy_file(dir_ / "np2" / "metrics.jsonl", dir_ / name / "metrics.jsonl");  // records past step 3 are dropped
    return full_args(path(name), accumulation, 6, 3) + " --resume_from_checkpoint latest";
  };
  run_ok(mpirun(3) + LMFORGE_CLI + " " + resume_from_np2("np3", 2));
  run_ok(std::string(LMFORGE_CLI) + " " + resume_from_np2("single", 6));
  for (const char* name : {"np3", "single"}) {
    expect_same_metrics(dir_ / name, one);
    std::cerr << name << " resumed: largest weight difference "
              << expect_same_weights(dir_ / name / "model.safetensors", one / "model.safetensors") << "\n";
  }
  // ZeRO stage 1 at 2 ranks: rank 0 gathers the sharded AdamW state into the same checkpoint files
  // (the whole m and v), which resume at 3 ranks with stage 1 and in one process (stage 0).
  run_ok(mpirun(2) + LMFORGE_CLI + " " + full_args(path("zero1"), 3, 6, 3) + " --zero_stage 1");
  {
    const Checkpoint z = Checkpoint::open_safetensors(dir_ / "zero1" / "checkpoint-3" / "optimizer.safetensors");
    const Checkpoint s0 = Checkpoint::open_safetensors(dir_ / "np2" / "checkpoint-3" / "optimizer.safetensors");
    for (const char* t : {"exp_avg", "exp_avg_sq"}) EXPECT_EQ(z.get(t).shape, s0.get(t).shape) << t;
  }
  auto resume_from_zero1 = [&](const std::string& name, int accumulation) {
    fs::create_directories(dir_ / name);
    fs::copy(dir_ / "zero1" / "checkpoint-3", dir_ / name / "checkpoint-3", fs::copy_options::recursive);
    fs::copy_file(dir_ / "zero1" / "metrics.jsonl", dir_ / name / "metrics.jsonl");
    return full_args(path(name), accumulation, 6, 3) + " --resume_from_checkpoint latest";
  };
  run_ok(mpirun(3) + LMFORGE_CLI + " " + resume_from_zero1("zero1_np3", 2) + " --zero_stage 1");
  run_ok(std::string(LMFORGE_CLI) + " " + resume_from_zero1("zero1_single", 6));
  for (const char* name : {"zero1", "zero1_np3", "zero1_single"}) {
    expect_same_metrics(dir_ / name, one);
    std::cerr << name << " (ZeRO-1 checkpoint): largest weight difference "
              << expect_same_weights(dir_ / name / "model.safetensors", one / "model.safetensors") << "\n";
  }

  // Another global batch (2 ranks x 2 micro-batches, not 6) is refused, naming the flag.
  const RunResult r = run_command(mpirun(2) + LMFORGE_CLI + " " + resume_from_np2("np2x2", 2) + " </dev/null");
  expect_job_exit(r, 1);
  EXPECT_NE(r.err.find("error: --resume_from_checkpoint: the checkpoint's run took 6 micro-batches per optimizer step"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("error:"), r.err.rfind("error:")) << "one error line: " << r.err;
}

TEST_F(MpiFinetune, ASigtermToOneRankStopsEveryRankAfterTheSameStepWithACheckpoint) {
  // SIGTERM (or SIGINT) reaching one rank alone: the ranks agree on the stop after a step, rank 0
  // saves a resumable checkpoint and the job ends with status 1, instead of the others hanging in
  // the next collective. (Ctrl-C on mpirun itself is mpirun's to handle: docs/SCALE_OUT.md.)
  const std::string save = path("stopped");
  // The first training record means both ranks are in the loop; at most 30 s of waiting for it.
  const std::string script = "timeout 60 " + mpirun(2) + LMFORGE_CLI + " " + full_args(save, 1, 100000) +
                             " </dev/null & p=$!; i=0; while [ ! -s " + save + "/metrics.jsonl ] && [ $i -lt 600 ]; " +
                             "do sleep 0.05; i=$((i+1)); done; kill -TERM $(pgrep -P $(pgrep -P $p) | tail -1); wait $p";
  const RunResult r = run_command("sh -c '" + script + "'");
  expect_job_exit(r, 1);
  EXPECT_NE(r.err.find("stopping after step"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("interrupted after step"), std::string::npos) << r.err;
  int checkpoints = 0;
  for (const auto& e : fs::directory_iterator(save))
    if (e.path().filename().string().starts_with("checkpoint-")) {
      ++checkpoints;
      EXPECT_TRUE(fs::exists(e.path() / "optimizer.safetensors")) << e.path();
    }
  EXPECT_EQ(checkpoints, 1);
}

TEST_F(MpiFinetune, AKilledRankEndsTheJobNamingIt) {
  const auto t0 = std::chrono::steady_clock::now();
  const RunResult r = run_command(mpirun(2, "LMFORGE_DIST_TEST_KILL_RANK=1") + LMFORGE_CLI + " " +
                                  full_args(path("killed"), 1) + " </dev/null");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 30);
  EXPECT_NE(r.err.find("rank 1"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "killed" / "model.safetensors"));
}

TEST_F(MpiFinetune, ARankWithOtherDataIsOneErrorNamingIt) {
  const std::string other = write("other.csv", read(csv_) + "20210101,court win water rules\n");
  // Rank 1 reads the other file; rank 0 the test's.
  std::string args = full_args(path("other"), 1);
  args.replace(args.find(csv_), csv_.size(), "$d");
  const std::string per_rank = "sh -c 'if [ \"$OMPI_COMM_WORLD_RANK\" = 1 ]; then d=" + other + "; else d=" + csv_ +
                               "; fi; exec " + LMFORGE_CLI + " " + args + "'";
  const RunResult r = run_command(mpirun(2) + per_rank + " </dev/null");
  expect_job_exit(r, 1);
  EXPECT_NE(r.err.find("error: --data_path: rank 1's file '" + other + "' is not rank 0's '" + csv_ +
                       "' (its bytes differ); every rank must train on the same data"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("error:"), r.err.rfind("error:")) << "one error line: " << r.err;
}

TEST_F(MpiFinetune, ZeroStagesPastOneAreOneErrorNamingTheFlag) {
  for (const char* stage : {"2", "3"}) {
    const RunResult r = run_command(std::string(LMFORGE_CLI) + " " + full_args(path("z"), 1) + " --zero_stage " + stage +
                                    " </dev/null");
    EXPECT_EQ(r.exit_code, 1) << r.err;  // as every other bad flag value of finetune
    EXPECT_EQ(r.err, "error: --zero_stage " + std::string(stage) +
                         ": only 0 and 1 are supported (1: each mpirun rank holds 1/N of the AdamW state; ZeRO stages 2 "
                         "and 3 are not implemented)\n");
    EXPECT_FALSE(fs::exists(dir_ / "z"));
  }
}

}  // namespace
}  // namespace lmforge::test
