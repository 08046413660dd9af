// The all-reduce that data-parallel `finetune` runs once per optimizer step (docs/SCALE_OUT.md),
// timed on its own: dist::World::allreduce_sum (one in-place MPI_Allreduce of floats) over buffer
// sizes from 4 KiB to the gradients of GPT-2 124M and beyond. Its figures feed the scaling
// projection of docs/SCALE_OUT.md: the latency (small buffers) and the bus bandwidth (large ones).
//
//   mpirun -np 2 --bind-to none [--mca btl self,tcp --mca btl_tcp_if_include lo]
//       bench_allreduce [--max_mb 1024] [--seconds 1]
//
// Per size: the median of the timed rounds (at least 3, more until --seconds has passed), after
// one untimed round. algbw = bytes / time; busbw = algbw x 2 (N - 1) / N, the bandwidth each link
// carries in a ring all-reduce (the figure NCCL's tests report), comparable across N.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench_util.h"
#include "lmforge/dist/world.h"
#include "lmforge/error.h"

using namespace lmforge;

int main(int argc, char** argv) try {
  double max_mb = 1024, seconds = 1;
  for (bench::FlagReader f(argc, argv); f.next();) {
    if (f.is("--max_mb"))
      max_mb = std::stod(f.value());
    else if (f.is("--seconds"))
      seconds = std::stod(f.value());
    else
      throw Error("unknown flag " + f.flag() + " (--max_mb, --seconds)");
  }
  const dist::World& w = dist::world();
  if (!w.distributed()) {
    std::fprintf(stderr, "bench_allreduce: run it under mpirun with 2 or more ranks\n");
    return 2;
  }
  const char* btl = std::getenv("OMPI_MCA_btl");
  if (w.is_root())
    std::printf("ranks %d, load average %s, transport %s\n%12s %10s %12s %12s\n", w.size(),
                bench::load_average().c_str(), btl ? btl : "OpenMPI's choice (see mpirun --mca btl)", "bytes",
                "median_us", "algbw_GB/s", "busbw_GB/s");
  const size_t max_floats = static_cast<size_t>(max_mb * 1024 * 1024 / sizeof(float));
  std::vector<float> buf(max_floats, 1.0f);
  for (size_t n = 1024; n <= max_floats; n *= 4) {
    w.allreduce_sum(buf.data(), n, "warm-up");
    std::vector<double> t;
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
      // Every rank decides on rank 0's clock, so all run the same number of rounds.
      double go_on = w.is_root() && (t.size() < 3 || std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                                                                     start).count() < seconds)
                         ? 1.0
                         : 0.0;
      w.allreduce_sum(&go_on, 1, "round count");
      if (go_on == 0) break;
      const auto t0 = std::chrono::steady_clock::now();
      w.allreduce_sum(buf.data(), n, "timed all-reduce");
      t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      std::fill(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n), 1.0f);  // no overflow to inf
    }
    std::sort(t.begin(), t.end());
    const double med = t[t.size() / 2], bytes = static_cast<double>(n * sizeof(float));
    const double algbw = bytes / med / 1e9, busbw = algbw * 2.0 * (w.size() - 1) / w.size();
    if (w.is_root()) std::printf("%12.0f %10.1f %12.3f %12.3f\n", bytes, med * 1e6, algbw, busbw);
  }
  dist::finalize();
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
