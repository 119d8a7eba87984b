// Signal masks around device commands: see signal_guard.hpp.
#include "src/core/signal_guard.hpp"

#include <pthread.h>

#include <initializer_list>

namespace offcopy::detail {

sigset_t asynchronous_signals() noexcept {
  sigset_t set;
  sigfillset(&set);
  for (int s : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGKILL, SIGSTOP}) sigdelset(&set, s);
  return set;
}

signals_blocked::signals_blocked() noexcept {
  const sigset_t block = asynchronous_signals();
  restore_ = pthread_sigmask(SIG_BLOCK, &block, &previous_) == 0;
}

signals_blocked::~signals_blocked() {
  if (restore_) (void)pthread_sigmask(SIG_SETMASK, &previous_, nullptr);
}

}  // namespace offcopy::detail
