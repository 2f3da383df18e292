// status.h: the result type of every fallible call in the crmflow core.
//
// A Status is either OK or carries one code from a closed set plus a message
// that names the input: where (file:line:column, transaction id, state,
// event), then what, then the cause or expected value in parentheses, all
// lower case with no final period, for example
//
//   orders.csv:12:4: unknown state "shiped" (expected created, approved)
//
// StatusOr<T> holds either a value or a non-OK Status.  Both are
// [[nodiscard]]: ignoring a failure is a compile-time warning.
//
// Callbacks registered from outside the core (guards, hooks, actions) may
// throw C++ exceptions; the engine rolls back whatever the call had started
// and lets the exception propagate unchanged, so a binding layer can keep the
// original error type.

#ifndef CRMFLOW_STATUS_H_
#define CRMFLOW_STATUS_H_

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace crmflow {

// The closed set of failure codes.  Each maps to one Python exception class.
enum class Code {
  kOk = 0,
  kInvalidArgument,    // a malformed value, name or option
  kNotFound,           // unknown transaction, kind, state, event, guard
  kAlreadyExists,      // duplicate transaction id, kind registered twice
  kNotAllowed,         // event not allowed in the transaction's state
  kGuardRefused,       // a guard returned false (message holds its reason)
  kConcurrentUpdate,   // write from a stale copy (version mismatch)
  kParseError,         // unreadable input: CSV, timestamp, decimal
  kValidationError,    // a workflow failed validate()
  kStoreError,         // SQLite failed (I/O, corruption, schema)
};

// Returns the lower-case name of `code`, e.g. "not allowed".
const char* CodeName(Code code);

class [[nodiscard]] Status {
 public:
  // Creates an OK status.
  Status() = default;
  Status(Code code, std::string message)
      : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  // Returns the message; empty for OK.
  const std::string& message() const { return message_; }
  // Returns "<code name>: <message>", or "ok".
  std::string ToString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// Holds a T or a failure.  Accessing value() of a failed StatusOr is a bug
// and asserts.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  StatusOr(Status status) : status_(std::move(status)) {  // NOLINT
    assert(!status_.ok());
  }

  bool ok() const { return status_.ok(); }
  const Status& status() const { return status_; }
  T& value() & {
    assert(ok());
    return *value_;
  }
  const T& value() const& {
    assert(ok());
    return *value_;
  }
  T&& value() && {
    assert(ok());
    return std::move(*value_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  Status status_;
  std::optional<T> value_;
};

}  // namespace crmflow

// Returns early from the enclosing function when `expr` is not OK.
#define CRMFLOW_RETURN_IF_ERROR(expr)          \
  do {                                         \
    ::crmflow::Status _crmflow_st = (expr);    \
    if (!_crmflow_st.ok()) return _crmflow_st; \
  } while (0)

#endif  // CRMFLOW_STATUS_H_
