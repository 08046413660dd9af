// Ctrl-C safe training: SIGINT/SIGTERM only raise a flag that finetune() polls between optimizer
// steps (see StopSignalHandlers in trainer.h). The handler does nothing that is not
// async-signal-safe: it stores the signal number, and on a second signal restores the default
// action and re-raises, so the process ends at once. Every checkpoint file is written to a
// temporary name and renamed, so ending there corrupts nothing.
#include <csignal>

#include "lmforge/train/trainer.h"

namespace lmforge {
namespace {

volatile std::sig_atomic_t g_stop_signal = 0;

extern "C" void on_stop_signal(int signo) {
  if (g_stop_signal != 0) {  // the second signal (SA_RESETHAND covers a repeat of the same one)
    std::signal(signo, SIG_DFL);
    std::raise(signo);  // blocked while this handler runs; delivered, with its default action, on return
    return;
  }
  g_stop_signal = signo;
}

constexpr int kSignals[2] = {SIGINT, SIGTERM};

}  // namespace

StopSignalHandlers::StopSignalHandlers() {
  g_stop_signal = 0;
  struct sigaction sa{};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  // SA_RESTART: reads and writes in progress continue instead of failing with EINTR.
  // SA_RESETHAND: the next delivery of the same signal has the default action (a second Ctrl-C kills).
  sa.sa_flags = SA_RESTART | SA_RESETHAND;
  for (int i = 0; i < 2; ++i) {
    sigaction(kSignals[i], &sa, &previous_[i]);
    // A signal ignored when we started (`nohup`, a `cmd &` in a script) stays ignored, as the
    // shell intended.
    if (previous_[i].sa_handler == SIG_IGN) sigaction(kSignals[i], &previous_[i], nullptr);
  }
}

StopSignalHandlers::~StopSignalHandlers() {
  for (int i = 0; i < 2; ++i) sigaction(kSignals[i], &previous_[i], nullptr);
  g_stop_signal = 0;  // a request belongs to the run it stopped, not to a later one in this process
}

int stop_signal() { return g_stop_signal; }

}  // namespace lmforge
