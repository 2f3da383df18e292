// engine_handle.h: what the extra binding files (analytics, service desk)
// need from core_module.cc, the file that owns the Python Engine class.
//
// Each extra file defines one registration function, declared here and
// called at the end of PYBIND11_MODULE in core_module.cc, and reaches the
// C++ Engine behind a Python crmflow._core.Engine through these functions.

#ifndef CRMFLOW_BINDINGS_ENGINE_HANDLE_H_
#define CRMFLOW_BINDINGS_ENGINE_HANDLE_H_

#include <pybind11/pybind11.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>

#include "crmflow/engine.h"
#include "crmflow/routing.h"
#include "crmflow/status.h"
#include "crmflow/timestamp.h"

// pybind11 declares its namespace hidden; the classes below hold pybind11
// objects, so they are hidden too (all their users are in this module),
// which GCC otherwise reports (-Wattributes, "declared with greater
// visibility than the type of its field"); see pybind11's FAQ.
#if defined(__GNUC__)
#define CRMFLOW_BINDING_LOCAL __attribute__((visibility("hidden")))
#else
#define CRMFLOW_BINDING_LOCAL
#endif

namespace crmflow {

// The lock that serialises every use of one Python engine from several
// Python threads.  The C++ Engine and its SQLite connection are not
// thread-safe, and calls on a SQLite engine release the GIL, so the GIL
// alone does not keep two threads out of one engine.
//
// Recursive: Python callbacks (guards, hooks, actions, the clock, rule
// conditions, routing strategies) run on the thread that holds the engine
// and may read the same engine again.
//
// Deadlock-free with the GIL: Lock() is called with the GIL held and never
// blocks while holding it.  An uncontended lock is one compare-and-swap;
// when another thread holds the engine, the GIL is released for the wait
// (that thread may need the GIL for a callback) and taken back after.
//
// An explicit transaction (begin() .. commit()/rollback()) keeps the lock
// on the thread that began it, so another thread's calls cannot slip into
// it: they wait.  Between that thread's calls the lock is "parked": still
// its own, but with no call running, so close() from any thread may take
// it over and roll the transaction back, and so may rollback() once the
// owner thread has exited (TakeOver).  A wait behind a live owner's open
// transaction is bounded by kTransactionWaitMs (the SQLite store's busy
// timeout, the time another process's open transaction may make a writer
// wait); past it the waiting call fails with a StoreError ("engine busy"),
// so a thread that begins and never commits cannot hang the others
// silently.  Behind an owner that has exited the call fails at once with a
// StoreError naming that thread and the ways out.
class CRMFLOW_BINDING_LOCAL EngineMutex {
 public:
  static constexpr int kTransactionWaitMs = 10000;

  // How Lock() treats another thread's open explicit transaction.
  enum class TakeOver {
    kNever,      // wait for it (bounded, see above)
    kAbandoned,  // take it over when its owner has exited, else refuse
    kAlways,     // take it over as soon as its owner runs no call (close)
  };

  EngineMutex() = default;
  EngineMutex(const EngineMutex&) = delete;
  EngineMutex& operator=(const EngineMutex&) = delete;

  // Takes the lock for the calling thread (again, when it holds it).
  // Call with the GIL held; returns with it held.  Throws (a crmflow
  // error) after waiting kTransactionWaitMs behind another thread's open
  // transaction, or at once when that thread has exited; with kAbandoned,
  // throws InvalidArgumentError when that thread is still running.  After
  // a take-over the caller holds the taken transaction's levels too
  // (KeepForTransactions then lets them go).
  void Lock(TakeOver take_over = TakeOver::kNever) {
    if (!TryLock()) LockSlow(take_over);
  }

  // Takes the lock without waiting; false when another thread holds it.
  bool TryLock() {
    const uintptr_t me = Self() << 1;
    const uintptr_t seen = owner_.load(std::memory_order_relaxed);
    if (seen == me) {
      ++depth_;
      return true;
    }
    // Our own parked transaction; the exchange fails when another thread
    // took it over meanwhile.
    const bool resume = seen == (me | kParked);
    uintptr_t expected = resume ? seen : 0;
    if (owner_.compare_exchange_strong(expected, me,
                                       std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
      depth_ = resume ? depth_ + 1 : 1;
      return true;
    }
    return false;
  }

  // Drops one level taken by the calling thread; parks the lock when only
  // the levels of open transactions remain.
  void Unlock() {
    if (--depth_ > 0) {
      if (depth_ == transactions_) {
        owner_.store((Self() << 1) | kParked, std::memory_order_seq_cst);
        if (waiters_.load(std::memory_order_seq_cst) > 0) WakeWaiters();
      }
      return;
    }
    owner_.store(0, std::memory_order_seq_cst);
    if (waiters_.load(std::memory_order_seq_cst) > 0) WakeWaiters();
  }

  // True when the calling thread holds the lock (parked or not).
  bool HeldHere() const {
    return (owner_.load(std::memory_order_relaxed) >> 1) == Self();
  }

  // Explicit transactions.  The calling thread holds the lock, with the
  // GIL; makes the levels kept for open transactions equal `open` (the
  // store's nesting depth after begin/commit/rollback).  The thread that
  // opens the outermost one is recorded as its owner (for the messages
  // and to tell when it has exited).
  void KeepForTransactions(int open) {
    if (open < 0) open = 0;
    if (open > 0 && transactions_ == 0) NoteTransactionOwner();
    if (open == 0) ForgetTransactionOwner();
    depth_ += open - transactions_;
    transactions_ = open;
    in_transaction_.store(open > 0, std::memory_order_relaxed);
  }

  // True when some thread holds an explicit transaction open.
  bool InTransaction() const {
    return in_transaction_.load(std::memory_order_relaxed);
  }

  // True when the thread that began the open explicit transaction has
  // exited (false when none is open).  Call with the GIL held.
  bool TransactionOwnerExited() const;

  // Names the thread that began the open explicit transaction, e.g.
  // `thread "worker-2" (ident 1402)`.  Call with the GIL held.
  std::string TransactionOwnerName() const;

 private:
  // Low bit of owner_: the owner holds only open transactions, no call.
  static constexpr uintptr_t kParked = 1;

  // A number per thread, never 0 and never reused: a thread that exits
  // holding the lock (an abandoned transaction) must not pass it on to a
  // later thread that happens to get the same stack, thread descriptor or
  // thread-local block (all of which are recycled).
  static uintptr_t Self() {
    static thread_local uintptr_t self = 0;
    if (self == 0) self = NextThreadNumber();
    return self;
  }
  static uintptr_t NextThreadNumber() {
    static std::atomic<uintptr_t> next{0};
    return next.fetch_add(1, std::memory_order_relaxed) + 1;
  }
  // Takes a parked lock (`seen`, another thread's) for the caller; false
  // when it changed meanwhile.
  bool TakeParked(uintptr_t seen) {
    if (owner_.compare_exchange_strong(seen, Self() << 1,
                                       std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
      depth_ = transactions_ + 1;
      return true;
    }
    return false;
  }
  void LockSlow(TakeOver take_over);  // core_module.cc
  void NoteTransactionOwner();        // core_module.cc
  void ForgetTransactionOwner();      // core_module.cc
  void WakeWaiters() {
    { std::lock_guard<std::mutex> g(wait_mu_); }
    wait_cv_.notify_all();
  }

  // The owner's number shifted left by one, | kParked; 0 when free.
  std::atomic<uintptr_t> owner_{0};
  int depth_ = 0;         // levels held by the owner; only it touches this
  int transactions_ = 0;  // of which kept for open explicit transactions
  std::atomic<bool> in_transaction_{false};
  std::atomic<int> waiters_{0};
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;
  // The thread that began the open transaction: a weak reference to its
  // threading.Thread, its name and ident.  Guarded by the GIL.
  pybind11::object owner_thread_;
  std::string owner_name_;
  unsigned long owner_ident_ = 0;
};

// Holds an EngineMutex for its lifetime (see crmflow_lock_engine), and
// optionally a reference to the Python engine that owns it, so that the
// mutex outlives the guard even when the caller's only reference was weak.
// Destroy it with the GIL held.
class CRMFLOW_BINDING_LOCAL EngineLock {
 public:
  EngineLock() = default;
  explicit EngineLock(EngineMutex* mu, pybind11::object keep = {},
                      EngineMutex::TakeOver take_over =
                          EngineMutex::TakeOver::kNever)
      : mu_(mu), keep_(std::move(keep)) {
    mu_->Lock(take_over);
  }
  EngineLock(EngineLock&& other) noexcept
      : mu_(other.mu_), keep_(std::move(other.keep_)) {
    other.mu_ = nullptr;
  }
  EngineLock& operator=(EngineLock&&) = delete;
  EngineLock(const EngineLock&) = delete;
  ~EngineLock() {
    if (mu_ != nullptr) mu_->Unlock();
  }

 private:
  EngineMutex* mu_ = nullptr;
  pybind11::object keep_;
};

}  // namespace crmflow

// Serialises the calling thread's use of `engine` with every other
// thread's until the returned guard is destroyed; call it first, with the
// GIL held, in every entry point that reaches the engine's core, e.g.
//   crmflow::EngineLock lock = crmflow_lock_engine(engine);
// then release the GIL for SQLite work as before.  The guard keeps a
// reference to `engine` (a temporary, e.g. from a weak reference, is
// fine) and must be destroyed with the GIL held.  Raises
// InvalidArgumentError when `engine` is not an engine; an engine closed
// meanwhile is reported by crmflow_unwrap_engine, so unwrap after locking.
crmflow::EngineLock crmflow_lock_engine(pybind11::handle engine);

// Returns the C++ engine of `engine` (a crmflow._core.Engine or subclass).
// Raises InvalidArgumentError when it is closed or not an engine.  The
// reference is valid while the Python object is alive and open.
crmflow::Engine& crmflow_unwrap_engine(pybind11::handle engine);

// Returns the zone in which `engine` reads naive datetimes.
const crmflow::TimeZone& crmflow_engine_zone(pybind11::handle engine);

// Returns true when calls on `engine` should release the GIL (a SQLite
// store; the memory store is faster with the GIL kept).
bool crmflow_engine_releases_gil(pybind11::handle engine);

// Raises the crmflow._errors class for `status` (never returns).
[[noreturn]] void crmflow_throw_status(const crmflow::Status& status);

// Converts a Python time argument (int microseconds UTC, aware or naive
// datetime read in `zone`); `what` names the argument in errors.
crmflow::Timestamp crmflow_time_from_python(pybind11::handle value,
                                            const crmflow::TimeZone& zone,
                                            const char* what);

// Registration functions of the extra binding files.
// Converts a dict of attributes as Engine.create takes them; naive
// datetimes are in `zone`.  Throws InvalidArgumentError naming the key.
crmflow::Attributes crmflow_attributes_from_python(
    pybind11::handle value, const crmflow::TimeZone& zone);

void crmflow_register_analytics(pybind11::module_& m);
void crmflow_register_service(pybind11::module_& m);
void crmflow_register_routing(pybind11::module_& m);
void crmflow_register_rules(pybind11::module_& m);
void crmflow_register_approvals(pybind11::module_& m);

// Returns the C++ router of `router` (a crmflow._core.Router); raises
// TypeError for anything else.  Valid while the Python object lives.
crmflow::Router* crmflow_unwrap_router(pybind11::handle router);

#endif  // CRMFLOW_BINDINGS_ENGINE_HANDLE_H_
