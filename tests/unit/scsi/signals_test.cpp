// Device commands and signals (issue 8.5): a signal that arrives while a SCSI command runs waits
// until the command is done. Without that, SG_IO on /dev/sgN orphans the EXTENDED COPY on the
// device and either fails with EINTR (the copy looks not done while it goes on) or, under
// SA_RESTART, is sent a second time by the kernel. The transports the backends get block the
// asynchronous signals around each THIRD-PARTY COPY OUT command (EXTENDED COPY, POPULATE TOKEN,
// WRITE USING TOKEN); XCOPY worker threads start with them blocked.
#include <doctest/doctest.h>

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <span>
#include <string>

#include "offcopy/copy.hpp"
#include "src/core/signal_guard.hpp"
#include "tests/models/scsi_model.hpp"
#include "tests/unit/test_files.hpp"

using namespace offcopy;
using offcopy::test::scsi_model;
using offcopy::test::scsi_model_config;

namespace {

std::atomic<int> delivered{0};
void on_usr1(int) { ++delivered; }

/// SIGUSR1 handled with SA_RESTART (as the CLI's handlers) for the test's lifetime.
struct usr1_handler {
  struct sigaction old {};
  usr1_handler() {
    struct sigaction sa {};
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    REQUIRE(sigaction(SIGUSR1, &sa, &old) == 0);
  }
  ~usr1_handler() { sigaction(SIGUSR1, &old, nullptr); }
  usr1_handler(const usr1_handler&) = delete;
  usr1_handler& operator=(const usr1_handler&) = delete;
};

/// What the hook saw inside the copy commands, checked on the test's thread afterwards.
struct inside {
  std::atomic<int> commands{0};
  std::atomic<int> unblocked{0};         ///< commands running with SIGINT, SIGTERM or SIGUSR1 deliverable
  std::atomic<int> handled_inside{0};    ///< the handler ran before the command was done
  std::atomic<int> on_caller_thread{0};  ///< commands sent from the thread that called copy()
};

void look(inside& in, pthread_t caller, std::span<const std::uint8_t> cdb) {
  if (cdb.empty() || cdb[0] != 0x83) return;  // THIRD-PARTY COPY OUT: the commands a device goes on running
  ++in.commands;
  sigset_t mask;
  pthread_sigmask(SIG_BLOCK, nullptr, &mask);
  if (!sigismember(&mask, SIGINT) || !sigismember(&mask, SIGTERM) || !sigismember(&mask, SIGUSR1)) ++in.unblocked;
  // A signal to this very thread is delivered before pthread_kill returns -- unless it is blocked.
  const int before = delivered.load();
  pthread_kill(pthread_self(), SIGUSR1);
  if (delivered.load() != before) ++in.handled_inside;
  if (pthread_equal(pthread_self(), caller)) ++in.on_caller_thread;
}

}  // namespace

TEST_CASE("signals: the asynchronous signal set leaves the fault signals deliverable") {
  const sigset_t s = detail::asynchronous_signals();
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGALRM, SIGCHLD, SIGTSTP, SIGCONT, SIGPIPE, SIGXFSZ})
    CHECK(sigismember(&s, sig));
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS}) CHECK_FALSE(sigismember(&s, sig));
  sigset_t before, during, after;
  pthread_sigmask(SIG_BLOCK, nullptr, &before);
  {
    detail::signals_blocked quiet;
    pthread_sigmask(SIG_BLOCK, nullptr, &during);
  }
  pthread_sigmask(SIG_BLOCK, nullptr, &after);
  CHECK(sigismember(&during, SIGINT));
  CHECK(sigismember(&after, SIGINT) == sigismember(&before, SIGINT));
}

TEST_CASE("signals: a signal sent while an EXTENDED COPY runs is delivered once the command is done") {
  usr1_handler handler;
  test_files::scratch_dir dir;
  scsi_model model;  // LIO-like: one command at a time, on the caller's thread
  model.add_lu("lun0", dir.file("lun0"), 8 << 20);
  model.add_lu("lun1", dir.file("lun1"), 8 << 20);
  auto src = test_files::open_device(dir.file("lun0"), false);
  auto dst = test_files::open_device(dir.file("lun1"), true);
  inside in;
  const pthread_t caller = pthread_self();
  model.on_execute = [&](std::span<const std::uint8_t> cdb) { look(in, caller, cdb); };
  delivered = 0;
  policy pol;
  pol.mode = copy_mode::offload;
  std::vector<extent> ex;
  for (std::uint64_t i = 0; i < 6; ++i) ex.push_back({i * (1 << 20), i * (1 << 20), 256 << 10});
  report rep = copy(request{src, dst, ex}, pol);
  INFO(rep.result.to_string());
  REQUIRE(rep.result.ok());
  CHECK(rep.of("scsi-xcopy").commands == 6);
  CHECK(in.commands == 6);
  CHECK(in.unblocked == 0);
  CHECK(in.handled_inside == 0);
  CHECK(in.on_caller_thread == in.commands);
  CHECK(delivered == in.commands);  // every one delivered, after its command
}

TEST_CASE("signals: XCOPY worker threads never take a signal while their command runs") {
  usr1_handler handler;
  test_files::scratch_dir dir;
  scsi_model_config c;
  c.snlid = false;
  c.max_concurrent_copies = 4;
  scsi_model model(c);
  model.add_lu("lun0", dir.file("lun0"), 8 << 20);
  model.add_lu("lun1", dir.file("lun1"), 8 << 20);
  auto src = test_files::open_device(dir.file("lun0"), false);
  auto dst = test_files::open_device(dir.file("lun1"), true);
  (void)src->probe();
  (void)dst->probe();
  inside in;
  const pthread_t caller = pthread_self();
  model.on_execute = [&](std::span<const std::uint8_t> cdb) { look(in, caller, cdb); };
  policy pol;
  pol.mode = copy_mode::offload;
  pol.commands_in_flight = 4;
  std::vector<extent> ex;
  for (std::uint64_t i = 0; i < 12; ++i) ex.push_back({i * (512 << 10), (11 - i) * (512 << 10), 256 << 10});
  report rep = copy(request{src, dst, ex}, pol);
  INFO(rep.result.to_string());
  REQUIRE(rep.result.ok());
  CHECK(rep.of("scsi-xcopy").commands == 12);
  CHECK(in.commands == 12);
  CHECK(in.on_caller_thread == 0);  // all from the workers
  CHECK(in.unblocked == 0);
  CHECK(in.handled_inside == 0);
}
