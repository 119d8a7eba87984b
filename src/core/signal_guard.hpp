// Keeping signals away from device commands whose wait a signal would interrupt (issue 8.5).
//
// SG_IO on /dev/sgN waits interruptibly (Linux sg_ioctl: wait_event_interruptible): a signal
// orphans the running command on the device -- an EXTENDED COPY goes on copying -- and the call
// either fails with EINTR (no SA_RESTART: the copy looks not done) or is restarted by the kernel,
// which sends the command a second time while the first may still run. Blocking the
// asynchronous signals in the thread for the length of the command makes the signal wait: it is
// delivered the moment the command is done (the caller's cancel flag is then seen before the
// next command).
#pragma once

#include <signal.h>

namespace offcopy::detail {

/// The signals a device command is shielded from: all but the synchronous ones a fault raises in
/// this thread (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS) and the two no thread can block.
[[nodiscard]] sigset_t asynchronous_signals() noexcept;

/// Blocks asynchronous_signals() in the calling thread for its lifetime, then restores the mask
/// (pending signals are delivered then). Threads started meanwhile inherit the blocked mask.
class signals_blocked {
 public:
  signals_blocked() noexcept;
  ~signals_blocked();
  signals_blocked(const signals_blocked&) = delete;
  signals_blocked& operator=(const signals_blocked&) = delete;

 private:
  sigset_t previous_;
  bool restore_ = false;
};

}  // namespace offcopy::detail
