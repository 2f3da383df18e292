// core_module.cc: the crmflow._core Python module.
//
// A thin layer over the C++ core: it converts arguments and results, keeps
// Python callbacks alive exactly as long as the engine needs them, releases
// the GIL around SQLite work, and maps every core Status to one exception of
// crmflow._errors (ThrowStatus is the only place that does).  No engine logic
// lives here.

#include <Python.h>
#include <datetime.h>
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "crmflow/engine.h"
#include "crmflow/importer.h"
#include "crmflow/status.h"
#include "crmflow/timestamp.h"
#include "crmflow/value.h"
#include "crmflow/workflow.h"
#include "engine_handle.h"

namespace py = pybind11;

namespace crmflow {
namespace {

// Python objects looked up once at import.  They are leaked on purpose: the
// interpreter may already be finalizing when static destructors run.
struct Globals {
  py::object errors_by_code;  // crmflow._errors.BY_CODE
  py::object error_base;      // crmflow._errors.Error
  py::object decimal_cls;     // decimal.Decimal
  py::object json_dumps;      // json.dumps
  py::object json_loads;      // json.loads
  py::object format;          // builtins.format
  py::object payload_default;  // crmflow._json.default
  py::object payload_constant;  // crmflow._json.parse_constant
  py::object utc;             // datetime.timezone.utc
};
Globals* globals = nullptr;

// Raises the crmflow._errors class of `status` with its message.
[[noreturn]] void ThrowStatus(const Status& status) {
  py::object cls = globals->error_base;
  py::object by_code = globals->errors_by_code;
  py::str key(CodeName(status.code()));
  if (by_code.contains(key)) cls = by_code[key];
  // Messages quote the input, which may not be UTF-8 (bytes passed for a
  // str argument): show such bytes escaped rather than fail to raise.
  const std::string& text = status.message();
  py::object message = py::reinterpret_steal<py::object>(PyUnicode_DecodeUTF8(
      text.data(), static_cast<Py_ssize_t>(text.size()), "backslashreplace"));
  if (!message) throw py::error_already_set();
  PyErr_SetObject(cls.ptr(), message.ptr());
  throw py::error_already_set();
}

void Check(const Status& status) {
  if (!status.ok()) ThrowStatus(status);
}

template <typename T>
T Take(StatusOr<T>&& result) {
  if (!result.ok()) ThrowStatus(result.status());
  return std::move(result).value();
}

[[noreturn]] void ThrowInvalid(const std::string& message) {
  ThrowStatus(Status(Code::kInvalidArgument, message));
}

// Civil date from days since 1970-01-01 (proleptic Gregorian), after Howard
// Hinnant's public-domain description of the algorithm.
void CivilFromDays(int64_t z, int* y, int* m, int* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  *d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  *m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  *y = static_cast<int>(yoe + era * 400 + (*m <= 2 ? 1 : 0));
}

int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// Returns an aware UTC datetime for `t`.
py::object DatetimeFromTimestamp(Timestamp t) {
  const int64_t kDay = 86400LL * 1000000LL;
  int64_t days = FloorDiv(t.micros, kDay);
  int64_t rest = t.micros - days * kDay;
  int y, m, d;
  CivilFromDays(days, &y, &m, &d);
  int64_t secs = rest / 1000000;
  int us = static_cast<int>(rest % 1000000);
  PyObject* dt = PyDateTimeAPI->DateTime_FromDateAndTime(
      y, m, d, static_cast<int>(secs / 3600),
      static_cast<int>((secs / 60) % 60), static_cast<int>(secs % 60), us,
      globals->utc.ptr(), PyDateTimeAPI->DateTimeType);
  if (dt == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(dt);
}

// Converts a Python time argument: int microseconds UTC, aware datetime, or
// naive datetime read in `zone`.  `what` names the argument in errors.
Timestamp TimestampFromPython(py::handle obj, const TimeZone& zone,
                              const char* what) {
  if (PyLong_Check(obj.ptr()) && !PyBool_Check(obj.ptr())) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(obj.ptr(), &overflow);
    if (overflow != 0 || (v == -1 && PyErr_Occurred()) ||
        !Timestamp{v}.InRange()) {
      PyErr_Clear();
      ThrowInvalid(std::string(what) + ": integer time out of range "
                   "(expected microseconds between 0001-01-01 and "
                   "9999-12-31)");
    }
    return Timestamp{v};
  }
  if (!PyDateTime_Check(obj.ptr())) {
    ThrowInvalid(std::string(what) + ": expected a datetime or int "
                 "microseconds (got " +
                 std::string(Py_TYPE(obj.ptr())->tp_name) + ")");
  }
  int y = PyDateTime_GET_YEAR(obj.ptr());
  int mo = PyDateTime_GET_MONTH(obj.ptr());
  int d = PyDateTime_GET_DAY(obj.ptr());
  int h = PyDateTime_DATE_GET_HOUR(obj.ptr());
  int mi = PyDateTime_DATE_GET_MINUTE(obj.ptr());
  int s = PyDateTime_DATE_GET_SECOND(obj.ptr());
  int us = PyDateTime_DATE_GET_MICROSECOND(obj.ptr());
  py::object offset = obj.attr("utcoffset")();
  if (offset.is_none()) {
    auto r = zone.FromCivil(y, mo, d, h, mi, s, us);
    if (!r.ok()) ThrowStatus(r.status());
    // The zone's offset can carry year 1 or 9999 out of the range (in
    // Berlin, 0001-01-01 00:00 local is in year 0 UTC).
    if (!r.value().InRange()) {
      ThrowInvalid(std::string(what) + ": time out of range in UTC "
                   "(expected 0001-01-01 to 9999-12-31)");
    }
    return r.value();
  }
  auto r = Timestamp::FromCivilUtc(y, mo, d, h, mi, s, us);
  if (!r.ok()) ThrowStatus(r.status());
  int64_t off = (static_cast<int64_t>(PyDateTime_DELTA_GET_DAYS(offset.ptr())) *
                     86400 +
                 PyDateTime_DELTA_GET_SECONDS(offset.ptr())) *
                    1000000 +
                PyDateTime_DELTA_GET_MICROSECONDS(offset.ptr());
  const int64_t micros = r.value().micros - off;
  if (!Timestamp{micros}.InRange()) {
    ThrowInvalid(std::string(what) + ": time out of range in UTC "
                 "(expected 0001-01-01 to 9999-12-31)");
  }
  return Timestamp{micros};
}

std::optional<Timestamp> OptionalTime(py::handle obj, const TimeZone& zone,
                                      const char* what) {
  if (obj.is_none()) return std::nullopt;
  return TimestampFromPython(obj, zone, what);
}

// Returns the Python object for an attribute value.
py::object ValueToPython(const Value& v) {
  switch (v.type()) {
    case ValueType::kNull:
      return py::none();
    case ValueType::kText:
      return py::str(v.text());
    case ValueType::kInteger:
      return py::int_(v.integer());
    case ValueType::kDecimal:
      return globals->decimal_cls(py::str(v.decimal().ToString()));
    case ValueType::kTimestamp:
      return DatetimeFromTimestamp(v.timestamp());
    case ValueType::kDuration: {
      int64_t us = v.duration().micros;
      const int64_t kDay = 86400LL * 1000000LL;
      int64_t days = FloorDiv(us, kDay);
      int64_t rest = us - days * kDay;
      PyObject* td = PyDelta_FromDSU(static_cast<int>(days),
                                     static_cast<int>(rest / 1000000),
                                     static_cast<int>(rest % 1000000));
      if (td == nullptr) throw py::error_already_set();
      return py::reinterpret_steal<py::object>(td);
    }
    case ValueType::kBoolean:
      return py::bool_(v.boolean());
  }
  return py::none();
}

// Converts a Python attribute value; `name` names it in errors.
Value ValueFromPython(py::handle obj, const TimeZone& zone,
                      const std::string& name) {
  if (obj.is_none()) return Value();
  if (PyBool_Check(obj.ptr())) return Value::Bool(obj.ptr() == Py_True);
  if (PyLong_Check(obj.ptr())) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(obj.ptr(), &overflow);
    if (overflow != 0) {
      ThrowInvalid("attribute \"" + name +
                   "\": integer out of 64-bit range (use a Decimal)");
    }
    return Value::Integer(v);
  }
  if (PyUnicode_Check(obj.ptr())) {
    Py_ssize_t size = 0;
    const char* data = PyUnicode_AsUTF8AndSize(obj.ptr(), &size);
    if (data == nullptr) {
      PyErr_Clear();
      ThrowInvalid("attribute \"" + name + "\": text is not valid UTF-8");
    }
    return Value::Text(std::string(data, static_cast<size_t>(size)));
  }
  if (PyFloat_Check(obj.ptr())) {
    ThrowInvalid("attribute \"" + name +
                 "\": binary floats are refused (use decimal.Decimal for "
                 "money or int)");
  }
  if (py::isinstance(obj, globals->decimal_cls)) {
    // format(d, "f") writes 1E-7 as 0.0000001 and 1E+2 as 100, which the
    // core's parser reads; str() would keep the exponent.
    std::string text = py::str(globals->format(obj, "f"));
    auto d = Decimal::Parse(text);
    if (!d.ok()) {
      ThrowInvalid("attribute \"" + name + "\": decimal " + text +
                   " not representable (expected a finite value with at "
                   "most 18 decimal places)");
    }
    return Value::Dec(d.value());
  }
  if (PyDateTime_Check(obj.ptr())) {
    return Value::Time(TimestampFromPython(obj, zone, name.c_str()));
  }
  if (PyDelta_Check(obj.ptr())) {
    int64_t us =
        (static_cast<int64_t>(PyDateTime_DELTA_GET_DAYS(obj.ptr())) * 86400 +
         PyDateTime_DELTA_GET_SECONDS(obj.ptr())) *
            1000000 +
        PyDateTime_DELTA_GET_MICROSECONDS(obj.ptr());
    return Value::Span(Duration{us});
  }
  ThrowInvalid("attribute \"" + name + "\": unsupported type " +
               std::string(Py_TYPE(obj.ptr())->tp_name) +
               " (expected str, int, bool, Decimal, datetime, timedelta or "
               "None)");
}

std::string TextArg(py::handle obj, const char* what);

Attributes AttributesFromPython(py::handle obj, const TimeZone& zone) {
  Attributes attrs;
  if (obj.is_none()) return attrs;
  if (!PyDict_Check(obj.ptr())) ThrowInvalid("attributes: expected a dict");
  for (auto item : py::reinterpret_borrow<py::dict>(obj)) {
    if (!PyUnicode_Check(item.first.ptr())) {
      ThrowInvalid("attributes: names must be str");
    }
    std::string name = TextArg(item.first, "attribute name");
    SetAttribute(attrs, name, ValueFromPython(item.second, zone, name));
  }
  return attrs;
}

py::dict AttributesToPython(const Attributes& attrs) {
  py::dict d;
  for (const auto& [name, value] : attrs) d[py::str(name)] = ValueToPython(value);
  return d;
}

// Converts a str argument, refusing surrogates and other non-UTF-8 text
// with a message naming the argument.
std::string TextArg(py::handle obj, const char* what) {
  if (!PyUnicode_Check(obj.ptr())) {
    ThrowInvalid(std::string(what) + ": expected str (got " +
                 std::string(Py_TYPE(obj.ptr())->tp_name) + ")");
  }
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(obj.ptr(), &size);
  if (data == nullptr) {
    PyErr_Clear();
    ThrowInvalid(std::string(what) + ": text is not valid UTF-8");
  }
  return std::string(data, static_cast<size_t>(size));
}

// A payload argument: str stored verbatim, anything else as JSON.
std::string PayloadArg(py::handle obj) {
  if (obj.is_none()) return std::string();
  if (PyUnicode_Check(obj.ptr())) {
    std::string text = TextArg(obj, "payload");
    if (text.empty()) return text;
    // Stored payloads must stay readable by SQLite's JSON functions.
    try {
      globals->json_loads(obj, py::arg("parse_constant") =
                                   globals->payload_constant);
    } catch (py::error_already_set& e) {
      std::string why = py::str(e.value());
      ThrowInvalid("payload: not valid JSON (" + why + ")");
    }
    return text;
  }
  py::object text;
  try {
    text = globals->json_dumps(obj, py::arg("ensure_ascii") = false,
                               py::arg("allow_nan") = false,
                               py::arg("default") = globals->payload_default);
  } catch (py::error_already_set& e) {
    std::string why = py::str(e.value());
    ThrowInvalid("payload: cannot be written as JSON (" + why + ")");
  }
  return TextArg(text, "payload");
}

// How many Python callbacks (guards, hooks, actions, clocks) are running
// now on this thread, on any engine.  Closing an engine, registering a
// workflow or steering its transaction from inside one would pull state
// from under the call that is running, so those are refused meanwhile.
// Per thread: a callback running on one thread must not refuse another
// thread's begin() (which waits for the engine lock instead).
thread_local int callback_depth = 0;

// Counts one running callback for its lifetime.  Construct it with the GIL
// held.
class CallbackScope {
 public:
  CallbackScope() { ++callback_depth; }
  ~CallbackScope() { --callback_depth; }
  CallbackScope(const CallbackScope&) = delete;
  CallbackScope& operator=(const CallbackScope&) = delete;
};

// Refuses `what` while a callback runs.
void RefuseInsideCallback(const char* what) {
  if (callback_depth > 0) {
    ThrowInvalid(std::string(what) +
                 " cannot be called from inside a guard, hook or action");
  }
}

// Keeps a Python callable alive for as long as the engine holds any copy of
// the std::function, and drops the reference with the GIL held, whichever
// thread destroys the last copy.
std::shared_ptr<py::object> Hold(py::object fn) {
  return std::shared_ptr<py::object>(new py::object(std::move(fn)),
                                     [](py::object* p) {
                                       py::gil_scoped_acquire gil;
                                       delete p;
                                     });
}

// The snapshot a Python callback receives.
struct PyCallContext {
  Transaction transaction;
  std::string event;
  std::string from_state;
  std::string to_state;
  int64_t time = 0;
  std::string actor;
  std::string payload;
};

PyCallContext Snapshot(const CallContext& c) {
  PyCallContext p;
  p.transaction = c.txn;
  p.event = std::string(c.event);
  p.from_state = std::string(c.from_state);
  p.to_state = std::string(c.to_state);
  p.time = c.time.micros;
  p.actor = std::string(c.actor);
  p.payload = std::string(c.payload);
  return p;
}

// Wraps a Python callable as a hook or action: it runs with the GIL held,
// counted as a running callback, on a snapshot of the call.
HookFn PythonHook(py::object fn) {
  auto held = Hold(std::move(fn));
  return [held](const CallContext& c) {
    py::gil_scoped_acquire gil;
    CallbackScope scope;
    (*held)(Snapshot(c));
  };
}

// Releases the GIL only where the work is worth it (SQLite I/O); the memory
// store is fast enough that the release would cost more than it frees.
class MaybeRelease {
 public:
  explicit MaybeRelease(bool release) {
    if (release) state_ = PyEval_SaveThread();
  }
  ~MaybeRelease() {
    if (state_ != nullptr) PyEval_RestoreThread(state_);
  }
  MaybeRelease(const MaybeRelease&) = delete;
  MaybeRelease& operator=(const MaybeRelease&) = delete;

 private:
  PyThreadState* state_ = nullptr;
};

// The Python-facing engine: owns the core Engine and the zone for naive
// datetimes.
class PyEngine {
 public:
  PyEngine(const std::string& path, py::object clock, const std::string& zone)
      : path_(path) {
    if (path.find('\0') != std::string::npos) {
      ThrowInvalid("path contains a NUL character");
    }
    zone_ = Take(TimeZone::Load(zone));
    EngineOptions options;
    options.path = path;
    if (!clock.is_none()) {
      auto held = Hold(std::move(clock));
      TimeZone tz = zone_;
      options.clock = [held, tz]() {
        py::gil_scoped_acquire gil;
        CallbackScope scope;
        py::object r = (*held)();
        return TimestampFromPython(r, tz, "clock()");
      };
    }
    release_ = !path.empty();
    auto engine = [&] {
      MaybeRelease nogil(release_);
      return Engine::Open(std::move(options));
    }();
    engine_ = Take(std::move(engine));
  }

  ~PyEngine() {
    // Callbacks hold Python references; drop them while the GIL is held.
    if (engine_) engine_->ClearCallbacks();
  }

  Engine& engine() {
    if (!engine_) {
      ThrowStatus(Status(Code::kInvalidArgument,
                         "engine for \"" + path_ + "\" is closed"));
    }
    return *engine_;
  }

  // Closes the engine from any thread: waits for a call running on
  // another thread, but not for an explicit transaction left open between
  // calls (by a live thread or one that has exited), which it rolls back.
  // Closing twice does nothing.
  void Close() {
    if (!engine_) return;
    RefuseInsideCallback("close()");
    EngineLock lock(&mutex_, {}, EngineMutex::TakeOver::kAlways);
    if (!engine_) return;
    // Every open level goes, whoever began it, before the store does: the
    // write lock must not outlive the engine (nor wait for a collector).
    {
      MaybeRelease nogil(release_);
      while (engine_->store().depth() > 0 && engine_->Rollback().ok()) {
      }
    }
    engine_->ClearCallbacks();
    {
      MaybeRelease nogil(release_);
      engine_.reset();
    }
    mutex_.KeepForTransactions(0);
  }

  // Serialises the threads that use this engine (see EngineMutex); every
  // method that reaches engine() takes it first.
  EngineMutex& mutex() { return mutex_; }

  // Makes the lock levels kept for explicit transactions match the store
  // (after begin, commit or rollback, whatever their outcome).
  void SyncTransactions() {
    mutex_.KeepForTransactions(engine_ ? engine_->store().depth() : 0);
  }

  bool release() const { return release_; }
  const TimeZone& zone() const { return zone_; }
  const std::string& path() const { return path_; }

  // Returns (borrowed) an interned Python str for a state name, so that
  // fire does not allocate a new str on every call.  `name` views the
  // workflow's own string (FireResult::state), so a small table indexed by
  // its address finds it without hashing the text; the text is compared
  // too, since a re-registered workflow may reuse an address.
  PyObject* StateName(std::string_view name) {
    auto key = reinterpret_cast<uintptr_t>(name.data());
    StateSlot& slot = state_slots_[(key >> 3) % kStateSlots];
    if (slot.data == name.data() && slot.text == name) return slot.str.ptr();
    auto it = state_names_.find(std::string(name));
    if (it == state_names_.end()) {
      py::object str = py::str(name.data(), name.size());
      it = state_names_.emplace(std::string(name), std::move(str)).first;
    }
    slot.data = name.data();
    slot.text = it->first;
    slot.str = it->second;
    return slot.str.ptr();
  }

 private:
  std::string path_;
  TimeZone zone_;
  bool release_ = false;
  EngineMutex mutex_;
  std::unique_ptr<Engine> engine_;
  std::unordered_map<std::string, py::object> state_names_;
  struct StateSlot {
    const char* data = nullptr;
    std::string text;
    py::object str;
  };
  static constexpr size_t kStateSlots = 64;
  StateSlot state_slots_[kStateSlots];
};

// Refuses `what` (commit() or rollback()) on a thread other than the one
// that holds an explicit transaction open: it would otherwise wait for the
// very transaction it means to end.  When that thread has exited, returns
// true for rollback() (which then takes the transaction over and discards
// it); a dead thread's work is never committed for it.
bool RefuseOtherThreadsTransaction(PyEngine& e, const char* what,
                                   bool take_abandoned) {
  EngineMutex& mu = e.mutex();
  if (!mu.InTransaction() || mu.HeldHere()) return false;
  std::string where = std::string(what) +
                      ": the open transaction of engine \"" + e.path() +
                      "\" was begun by another thread, " +
                      mu.TransactionOwnerName();
  if (mu.TransactionOwnerExited()) {
    if (take_abandoned) return true;
    ThrowInvalid(where + ", which has exited; its work cannot be committed "
                 "for it (rollback() discards it)");
  }
  ThrowInvalid(where + "; only that thread can commit or roll it back "
               "(close() rolls it back from any thread)");
}

StateRole RoleFromString(const std::string& role) {
  if (role == "initial") return StateRole::kInitial;
  if (role == "terminal") return StateRole::kTerminal;
  if (role == "normal" || role.empty()) return StateRole::kNormal;
  ThrowInvalid("state role \"" + role +
               "\" unknown (expected initial, terminal or normal)");
}

const char* RoleName(StateRole role) {
  switch (role) {
    case StateRole::kInitial:
      return "initial";
    case StateRole::kTerminal:
      return "terminal";
    case StateRole::kNormal:
      break;
  }
  return "normal";
}

// ProblemKindName is workflow.h's.

// Columnar conversion of history rows for a fast DataFrame.
py::dict HistoryColumns(const std::vector<HistoryRow>& rows) {
  const size_t n = rows.size();
  py::list seq(n), txn(n), event(n), from(n), to(n), time(n), actor(n),
      payload(n), internal(n), wfv(n), source(n);
  for (size_t i = 0; i < n; ++i) {
    const HistoryRow& r = rows[i];
    seq[i] = py::int_(r.seq);
    txn[i] = py::str(r.transaction_id);
    event[i] = py::str(r.event);
    from[i] = r.from_state.empty() ? py::object(py::none())
                                   : py::object(py::str(r.from_state));
    to[i] = py::str(r.to_state);
    time[i] = py::int_(r.time.micros);
    actor[i] = r.actor.empty() ? py::object(py::none())
                               : py::object(py::str(r.actor));
    payload[i] = r.payload.empty() ? py::object(py::none())
                                   : py::object(py::str(r.payload));
    internal[i] = py::bool_(r.internal);
    wfv[i] = py::int_(r.workflow_version);
    source[i] = r.source.empty() ? py::object(py::none())
                                 : py::object(py::str(r.source));
  }
  py::dict d;
  d["seq"] = seq;
  d["transaction_id"] = txn;
  d["event"] = event;
  d["from_state"] = from;
  d["to_state"] = to;
  d["time"] = time;
  d["actor"] = actor;
  d["payload"] = payload;
  d["internal"] = internal;
  d["workflow_version"] = wfv;
  d["source"] = source;
  return d;
}

// Columnar conversion of transactions for a fast DataFrame; empty
// customer and parent ids become None.
py::dict TransactionColumns(const std::vector<Transaction>& rows) {
  const size_t n = rows.size();
  py::list id(n), kind(n), state(n), customer(n), parent(n), version(n),
      wfv(n), created(n), updated(n), entered(n), attributes(n);
  auto text_or_none = [](const std::string& v) {
    return v.empty() ? py::object(py::none()) : py::object(py::str(v));
  };
  for (size_t i = 0; i < n; ++i) {
    const Transaction& t = rows[i];
    id[i] = py::str(t.id);
    kind[i] = py::str(t.kind);
    state[i] = py::str(t.state);
    customer[i] = text_or_none(t.customer_id);
    parent[i] = text_or_none(t.parent_id);
    version[i] = py::int_(t.version);
    wfv[i] = py::int_(t.workflow_version);
    created[i] = py::int_(t.created_at.micros);
    updated[i] = py::int_(t.updated_at.micros);
    entered[i] = py::int_(t.state_entered_at.micros);
    attributes[i] = AttributesToPython(t.attributes);
  }
  py::dict d;
  d["id"] = id;
  d["kind"] = kind;
  d["state"] = state;
  d["customer_id"] = customer;
  d["parent_id"] = parent;
  d["version"] = version;
  d["workflow_version"] = wfv;
  d["created_at"] = created;
  d["updated_at"] = updated;
  d["state_entered_at"] = entered;
  d["attributes"] = attributes;
  return d;
}

py::dict DeviationColumns(const std::vector<Deviation>& rows) {
  const size_t n = rows.size();
  py::list id(n), txn(n), kind(n), pos(n), state(n), event(n), time(n),
      reason(n), source(n);
  for (size_t i = 0; i < n; ++i) {
    const Deviation& r = rows[i];
    id[i] = py::int_(r.id);
    txn[i] = py::str(r.transaction_id);
    kind[i] = py::str(r.kind);
    pos[i] = py::int_(r.position);
    state[i] = py::str(r.state);
    event[i] = py::str(r.event);
    time[i] = py::int_(r.time.micros);
    reason[i] = py::str(r.reason);
    source[i] = r.source.empty() ? py::object(py::none())
                                 : py::object(py::str(r.source));
  }
  py::dict d;
  d["id"] = id;
  d["transaction_id"] = txn;
  d["kind"] = kind;
  d["position"] = pos;
  d["state"] = state;
  d["event"] = event;
  d["time"] = time;
  d["reason"] = reason;
  d["source"] = source;
  return d;
}

// Reads an optional key of an import mapping dict.
template <typename T>
void Opt(const py::dict& m, const char* key, T* out) {
  if (m.contains(key) && !m[key].is_none()) {
    try {
      *out = py::cast<T>(m[key]);
    } catch (const py::cast_error&) {
      ThrowInvalid(std::string("mapping key \"") + key +
                   "\" has the wrong type");
    }
  }
}

std::vector<std::pair<std::string, std::string>> PairsOpt(const py::dict& m,
                                                          const char* key) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!m.contains(key) || m[key].is_none()) return out;
  py::handle h = m[key];
  if (PyDict_Check(h.ptr())) {
    for (auto item : py::reinterpret_borrow<py::dict>(h)) {
      out.emplace_back(py::cast<std::string>(item.first),
                       py::cast<std::string>(item.second));
    }
    return out;
  }
  try {
    return py::cast<std::vector<std::pair<std::string, std::string>>>(h);
  } catch (const py::cast_error&) {
    ThrowInvalid(std::string("mapping key \"") + key +
                 "\" must be a dict of str to str");
  }
}

const char* kMappingKeys[] = {
    "kind",           "case_columns",    "customer_column", "parent_column",
    "id_prefix",      "attributes",      "time_format",     "time_zone",
    "null_values",    "delimiter",       "on_error",        "commit_every",
    "activity_column", "time_column",    "actor_column",    "payload_columns",
    "activity_map",   "status_map",      "created_column",  "milestones",
    "status_column"};

CommonMapping CommonFromDict(const py::dict& m) {
  for (auto item : m) {
    std::string key = py::cast<std::string>(py::str(item.first));
    bool known = false;
    for (const char* k : kMappingKeys) known = known || key == k;
    if (!known) ThrowInvalid("mapping key \"" + key + "\" unknown");
  }
  CommonMapping c;
  Opt(m, "kind", &c.kind);
  Opt(m, "case_columns", &c.case_columns);
  Opt(m, "customer_column", &c.customer_column);
  Opt(m, "parent_column", &c.parent_column);
  Opt(m, "id_prefix", &c.id_prefix);
  if (m.contains("attributes") && !m["attributes"].is_none()) {
    for (auto item : py::reinterpret_borrow<py::iterable>(m["attributes"])) {
      auto t = py::cast<std::vector<std::string>>(item);
      if (t.size() != 3) {
        ThrowInvalid("mapping attributes: expected (column, attribute, "
                     "type) triples");
      }
      ColumnAttribute a;
      a.column = t[0];
      a.attribute = t[1];
      a.type = Take(ParseValueType(t[2]));
      c.attributes.push_back(std::move(a));
    }
  }
  Opt(m, "time_format", &c.time_format);
  Opt(m, "time_zone", &c.time_zone);
  Opt(m, "null_values", &c.null_values);
  std::string delimiter;
  Opt(m, "delimiter", &delimiter);
  if (delimiter.size() > 1) {
    ThrowInvalid("mapping delimiter \"" + delimiter +
                 "\" must be one character");
  }
  c.csv.delimiter = delimiter.empty() ? 0 : delimiter[0];
  std::string on_error = "collect";
  Opt(m, "on_error", &on_error);
  if (on_error == "raise") {
    c.on_error = OnError::kRaise;
  } else if (on_error != "collect") {
    ThrowInvalid("on_error \"" + on_error +
                 "\" unknown (expected collect or raise)");
  }
  Opt(m, "commit_every", &c.commit_every);
  return c;
}

py::dict SummaryToPython(const ImportSummary& s) {
  py::dict d;
  d["file"] = s.file;
  d["kind"] = s.kind;
  d["rows"] = s.rows;
  d["cases"] = s.cases;
  d["created"] = s.created;
  d["events_applied"] = s.events_applied;
  d["deviations"] = s.deviations;
  d["unchanged"] = s.unchanged;
  d["ignored"] = s.ignored;
  d["skipped"] = s.skipped;
  d["inferred"] = s.inferred;
  d["in_rejected_cases"] = s.in_rejected_cases;
  py::list rejects;
  for (const Reject& r : s.rejects) {
    rejects.append(py::make_tuple(r.file, r.line, r.column, r.case_id,
                                  r.reason));
  }
  d["rejects"] = rejects;
  return d;
}

py::object ReportToPython(const std::vector<KindReport>& reports) {
  py::list out;
  for (const KindReport& k : reports) {
    py::dict d;
    d["kind"] = k.kind;
    d["transactions"] = k.transactions;
    py::dict by_state, reached;
    for (const auto& [s, n] : k.by_state) by_state[py::str(s)] = n;
    for (const auto& [s, n] : k.reached) reached[py::str(s)] = n;
    d["by_state"] = by_state;
    d["reached"] = reached;
    py::list transitions;
    for (const auto& t : k.transitions) {
      py::dict td;
      td["from_state"] = t.from_state;
      td["to_state"] = t.to_state;
      td["event"] = t.event;
      td["count"] = t.count;
      td["median_seconds"] = t.median_seconds;
      td["p90_seconds"] = t.p90_seconds;
      transitions.append(td);
    }
    d["transitions"] = transitions;
    d["deviations"] = k.deviations;
    out.append(d);
  }
  return out;
}

// --- Engine.fire and Engine.replay ---------------------------------------

// Returns a view of a str argument's UTF-8 text (cached in the object, so
// valid while it lives), refusing surrogates like TextArg.
std::string_view TextView(PyObject* obj, const char* what) {
  if (!PyUnicode_Check(obj)) {
    ThrowInvalid(std::string(what) + ": expected str (got " +
                 std::string(Py_TYPE(obj)->tp_name) + ")");
  }
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(obj, &size);
  if (data == nullptr) {
    PyErr_Clear();
    ThrowInvalid(std::string(what) + ": text is not valid UTF-8");
  }
  return std::string_view(data, static_cast<size_t>(size));
}

bool IsEmptyStr(PyObject* obj) {
  return PyUnicode_Check(obj) && PyUnicode_GET_LENGTH(obj) == 0;
}

[[noreturn]] void ThrowType(const std::string& message) {
  PyErr_SetString(PyExc_TypeError, message.c_str());
  throw py::error_already_set();
}

// The PyEngine of `self`, an instance of _core.Engine or a subclass: read
// from the instance directly in pybind11's simple layout (the usual case),
// else through pybind11's caster, which also reports an instance whose
// __init__ did not run.
PyEngine& EngineOf(PyObject* self) {
  auto* inst = reinterpret_cast<py::detail::instance*>(self);
  if (inst->simple_layout && inst->simple_holder_constructed &&
      inst->simple_value_holder[0] != nullptr) {
    return *static_cast<PyEngine*>(inst->simple_value_holder[0]);
  }
  return py::cast<PyEngine&>(py::handle(self));
}

constexpr const char* kFireArgs[] = {"id",      "event",
                                     "time",    "actor",
                                     "payload", "expected_version",
                                     "source"};
constexpr Py_ssize_t kFireArgCount = 7;

// Engine.fire(id, event, time=None, actor="", payload="",
// expected_version=None, source="").  A METH_FASTCALL function rather than
// a pybind11 method: pybind11's dispatcher spends about 250 ns matching
// seven arguments with defaults, more than the whole fire on the memory
// store, while parsing them here takes a few.  Errors are those of the
// pybind11 version: TypeError for a missing, unknown or repeated argument
// or a non-integer expected_version, crmflow errors for the rest.
PyObject* FireMethod(PyObject* self, PyObject* const* args, Py_ssize_t nargs,
                     PyObject* kwnames) {
  try {
    PyObject* a[kFireArgCount] = {};
    if (nargs > kFireArgCount) {
      ThrowType("fire() takes at most 7 arguments (" +
                std::to_string(nargs) + " given)");
    }
    for (Py_ssize_t i = 0; i < nargs; ++i) a[i] = args[i];
    if (kwnames != nullptr) {
      Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
      for (Py_ssize_t k = 0; k < nkw; ++k) {
        PyObject* name = PyTuple_GET_ITEM(kwnames, k);
        Py_ssize_t j = 0;
        while (j < kFireArgCount &&
               PyUnicode_CompareWithASCIIString(name, kFireArgs[j]) != 0) {
          ++j;
        }
        if (j == kFireArgCount) {
          ThrowType("fire() got an unexpected keyword argument '" +
                    std::string(TextView(name, "keyword")) + "'");
        }
        if (a[j] != nullptr) {
          ThrowType(std::string("fire() got multiple values for argument '") +
                    kFireArgs[j] + "'");
        }
        a[j] = args[nargs + k];
      }
    }
    for (int j = 0; j < 2; ++j) {
      if (a[j] == nullptr) {
        ThrowType(std::string("fire() missing required argument '") +
                  kFireArgs[j] + "'");
      }
    }
    PyEngine& e = EngineOf(self);
    std::string_view id = TextView(a[0], "id");
    std::string_view event = TextView(a[1], "event");
    FireOptions options;
    if (a[2] != nullptr) options.time = OptionalTime(a[2], e.zone(), "time");
    if (a[3] != nullptr && !IsEmptyStr(a[3])) {
      options.actor = TextArg(a[3], "actor");
    }
    if (a[4] != nullptr && !IsEmptyStr(a[4])) {
      options.payload = PayloadArg(a[4]);
    }
    if (a[5] != nullptr && a[5] != Py_None) {
      if (PyFloat_Check(a[5]) || !PyIndex_Check(a[5])) {
        ThrowType("fire(): expected_version must be an int or None (got " +
                  std::string(Py_TYPE(a[5])->tp_name) + ")");
      }
      long long v = PyLong_AsLongLong(a[5]);
      if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        ThrowType("fire(): expected_version out of 64-bit range");
      }
      options.expected_version = v;
    }
    if (a[6] != nullptr && !IsEmptyStr(a[6])) {
      options.source = TextArg(a[6], "source");
    }
    EngineLock lock(&e.mutex());
    Engine& engine = e.engine();
    std::optional<StatusOr<FireResult>> r;
    {
      MaybeRelease nogil(e.release());
      r.emplace(engine.Fire(id, event, options));
    }
    if (!r->ok()) ThrowStatus(r->status());
    return Py_NewRef(e.StateName(r->value().state));
  } catch (py::error_already_set& err) {
    err.restore();
    return nullptr;
  } catch (...) {
    py::detail::try_translate_exceptions();
    return nullptr;
  }
}

PyMethodDef fire_method = {
    "fire", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(
                &FireMethod)),
    METH_FASTCALL | METH_KEYWORDS,
    "fire(self, id, event, time=None, actor='', payload='', "
    "expected_version=None, source='')\n--\n\n"
    "Fires `event` on transaction `id`; returns the name of the state the "
    "transaction is in when the call ends (after any events that rules, "
    "such as an automatic approval, fired on it in the same call)."};

// Makes FireMethod the fire method of `cls` (_core.Engine).
void InstallFire(py::handle cls) {
  PyObject* descr = PyDescr_NewMethod(
      reinterpret_cast<PyTypeObject*>(cls.ptr()), &fire_method);
  if (descr == nullptr) throw py::error_already_set();
  int rc = PyObject_SetAttrString(cls.ptr(), "fire", descr);
  Py_DECREF(descr);
  if (rc != 0) throw py::error_already_set();
}

// One text column of replay, read into views: a tuple snapshot of the
// sequence (so that the str objects, whose UTF-8 the views point into,
// live until the batch is done, whatever a callback or another thread does
// to the caller's list meanwhile), with the views of recent objects
// remembered by identity: columns repeat the same str objects (a case's
// events share its id; event names cycle through a few), and a hit also
// hands the engine the same pointer, which it compares before the text.
class TextColumn {
 public:
  // `seq` may be None (every item "") when `optional`.
  TextColumn(py::handle seq, const char* what, bool payload = false)
      : what_(what), payload_(payload) {
    if (seq.is_none()) return;
    PyObject* t = PySequence_Tuple(seq.ptr());
    if (t == nullptr) throw py::error_already_set();
    items_ = py::reinterpret_steal<py::tuple>(t);
  }

  bool present() const { return static_cast<bool>(items_); }

  std::string_view At(size_t i) {
    if (!items_) return {};
    PyObject* obj = PyTuple_GET_ITEM(items_.ptr(), static_cast<Py_ssize_t>(i));
    // Direct-mapped by address (objects are 16-byte aligned).
    Seen& seen = seen_[(reinterpret_cast<uintptr_t>(obj) >> 4) % kSeen];
    if (seen.obj == obj) return seen.view;
    std::string_view view;
    if (payload_ && !PyUnicode_Check(obj)) {
      if (obj == Py_None) {
        view = {};
      } else {
        // JSON text of the payload, kept alive here with the views.
        py::object text =
            globals->json_dumps(obj, py::arg("ensure_ascii") = false);
        view = TextView(text.ptr(), what_);
        owned_.push_back(std::move(text));
      }
    } else {
      view = TextView(obj, what_);
    }
    seen.obj = obj;
    seen.view = view;
    return view;
  }

  // The views of every item, or an empty vector when absent.
  std::vector<std::string_view> Views(size_t n) {
    std::vector<std::string_view> out;
    if (!items_) return out;
    out.resize(n);
    for (size_t i = 0; i < n; ++i) out[i] = At(i);
    return out;
  }

 private:
  struct Seen {
    PyObject* obj = nullptr;
    std::string_view view;
  };
  // Enough for the event names of a workflow or so; ids hit on the entry
  // of the item before.
  static constexpr size_t kSeen = 64;

  const char* what_;
  bool payload_;
  py::tuple items_{py::reinterpret_steal<py::tuple>(py::handle())};
  std::vector<py::object> owned_;
  Seen seen_[kSeen];
};

// Reads replay's times: an int64 buffer (a numpy array, array('q')) in one
// copy, else a sequence of ints (microseconds) or of times in the forms
// TimestampFromPython takes.
std::vector<int64_t> TimeColumn(py::handle times, size_t n,
                                const TimeZone& zone) {
  std::vector<int64_t> out(n);
  if (!PyList_Check(times.ptr()) && !PyTuple_Check(times.ptr()) &&
      PyObject_CheckBuffer(times.ptr())) {
    Py_buffer view;
    if (PyObject_GetBuffer(times.ptr(), &view,
                           PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) == 0) {
      std::string_view format = view.format ? view.format : "B";
      if (!format.empty() && (format[0] == '<' || format[0] == '=' ||
                              format[0] == '@')) {
        format.remove_prefix(1);
      }
      bool int64 = view.ndim == 1 && view.itemsize == 8 &&
                   (format == "q" || format == "l") &&
                   static_cast<size_t>(view.shape[0]) == n;
      if (int64 && n > 0) std::memcpy(out.data(), view.buf, n * 8);
      PyBuffer_Release(&view);
      if (int64) return out;
    } else {
      PyErr_Clear();  // not a plain buffer: read it as a sequence
    }
  }
  py::object fast = py::reinterpret_steal<py::object>(
      PySequence_Fast(times.ptr(), "replay: times must be a sequence"));
  if (!fast) throw py::error_already_set();
  if (static_cast<size_t>(PySequence_Fast_GET_SIZE(fast.ptr())) != n) {
    ThrowInvalid("replay: ids, events and times differ in length");
  }
  PyObject** items = PySequence_Fast_ITEMS(fast.ptr());
  for (size_t i = 0; i < n; ++i) {
    PyObject* t = items[i];
    if (PyLong_CheckExact(t)) {
      // The common case, without TimestampFromPython's checks.
      int overflow = 0;
      long long v = PyLong_AsLongLongAndOverflow(t, &overflow);
      if (overflow != 0 || !Timestamp{v}.InRange()) {
        ThrowInvalid("times: integer time out of range (expected "
                     "microseconds between 0001-01-01 and 9999-12-31)");
      }
      out[i] = v;
    } else {
      out[i] = TimestampFromPython(t, zone, "times").micros;
    }
  }
  return out;
}

}  // namespace
}  // namespace crmflow

// Defined in analytics_module.cc: the EventLog, analytics and conformance.
#include "engine_handle.h"

void crmflow::EngineMutex::LockSlow(TakeOver take_over) {
  using Clock = std::chrono::steady_clock;
  // Since when the wait has been behind a live owner's open transaction.
  std::optional<Clock::time_point> behind_transaction;
  for (;;) {
    // With the GIL: a parked transaction's owner (a threading.Thread) can
    // only be asked whether it still runs with it held.
    uintptr_t seen = owner_.load(std::memory_order_seq_cst);
    if ((seen & kParked) != 0) {
      if (take_over == TakeOver::kAlways) {
        if (TakeParked(seen)) return;
        continue;
      }
      if (TransactionOwnerExited()) {
        if (take_over == TakeOver::kAbandoned) {
          if (TakeParked(seen)) return;
          continue;
        }
        crmflow::ThrowStatus(crmflow::Status(
            crmflow::Code::kStoreError,
            "abandoned transaction: " + TransactionOwnerName() +
                " began an explicit transaction and exited without "
                "commit() or rollback(); rollback() from any thread "
                "discards it, close() rolls it back and closes the engine"));
      }
      if (take_over == TakeOver::kAbandoned) {
        crmflow::ThrowInvalid(
            "the open transaction was begun by " + TransactionOwnerName() +
            ", which is still running; only that thread can commit or "
            "roll it back (close() rolls it back from any thread)");
      }
    }

    // Another thread holds the engine: wait without the GIL, which that
    // thread may need for a callback before it can let go.
    enum class Outcome { kLocked, kTimedOut, kAskOwner } outcome;
    PyThreadState* saved = PyEval_SaveThread();
    {
      std::unique_lock<std::mutex> g(wait_mu_);
      waiters_.fetch_add(1, std::memory_order_seq_cst);
      for (;;) {
        // Orders our waiters_ increment before the look at the owner, as
        // Unlock() orders its release before its look at waiters_.
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (TryLock()) {
          outcome = Outcome::kLocked;
          break;
        }
        uintptr_t now_seen = owner_.load(std::memory_order_seq_cst);
        if (take_over == TakeOver::kAlways && (now_seen & kParked) != 0 &&
            TakeParked(now_seen)) {
          outcome = Outcome::kLocked;
          break;
        }
        if (take_over == TakeOver::kNever && InTransaction()) {
          Clock::time_point now = Clock::now();
          if (!behind_transaction) behind_transaction = now;
          if (now - *behind_transaction >=
              std::chrono::milliseconds(kTransactionWaitMs)) {
            outcome = Outcome::kTimedOut;
            break;
          }
        } else {
          behind_transaction.reset();
        }
        // Unlock() wakes us; the slice bounds how late a transaction begun
        // meanwhile, or its owner's exit, is noticed.
        wait_cv_.wait_for(g, std::chrono::milliseconds(50));
        if (take_over != TakeOver::kAlways &&
            (owner_.load(std::memory_order_seq_cst) & kParked) != 0) {
          outcome = Outcome::kAskOwner;  // once a slice, with the GIL
          break;
        }
      }
      waiters_.fetch_sub(1, std::memory_order_seq_cst);
    }
    PyEval_RestoreThread(saved);
    if (outcome == Outcome::kLocked) return;
    if (outcome == Outcome::kTimedOut) {
      crmflow::ThrowStatus(crmflow::Status(
          crmflow::Code::kStoreError,
          "engine busy: waited " + std::to_string(kTransactionWaitMs / 1000) +
              " s for an explicit transaction that " +
              TransactionOwnerName() +
              " began and has not committed or rolled back (a transaction "
              "keeps the engine for its thread until commit() or "
              "rollback())"));
    }
  }
}

void crmflow::EngineMutex::NoteTransactionOwner() {
  owner_ident_ = PyThread_get_thread_ident();
  owner_name_.clear();
  owner_thread_ = py::object();
  // A weak reference: a live thread is kept by the threading module, so a
  // dead reference means its thread has gone.  A thread the threading
  // module cannot name leaves the reference empty and is never taken for
  // exited (its waiters get "engine busy" as before).
  try {
    py::object thread =
        py::module_::import("threading").attr("current_thread")();
    owner_name_ = py::str(thread.attr("name"));
    owner_thread_ = py::module_::import("weakref").attr("ref")(thread);
  } catch (py::error_already_set&) {
    owner_thread_ = py::object();
  }
}

void crmflow::EngineMutex::ForgetTransactionOwner() {
  owner_thread_ = py::object();
  owner_name_.clear();
  owner_ident_ = 0;
}

bool crmflow::EngineMutex::TransactionOwnerExited() const {
  if (!InTransaction() || !owner_thread_) return false;
  try {
    py::object thread = owner_thread_();
    if (thread.is_none()) return true;
    // Thread.is_alive() turns false when join() would return.
    return !py::cast<bool>(thread.attr("is_alive")());
  } catch (py::error_already_set&) {
    return false;
  }
}

std::string crmflow::EngineMutex::TransactionOwnerName() const {
  std::string ident = "ident " + std::to_string(owner_ident_);
  if (owner_name_.empty()) return "another thread (" + ident + ")";
  return "thread \"" + owner_name_ + "\" (" + ident + ")";
}

crmflow::EngineLock crmflow_lock_engine(pybind11::handle engine) {
  if (!py::isinstance<crmflow::PyEngine>(engine)) {
    crmflow::ThrowInvalid(std::string("expected a crmflow Engine (got ") +
                          Py_TYPE(engine.ptr())->tp_name + ")");
  }
  return crmflow::EngineLock(&py::cast<crmflow::PyEngine&>(engine).mutex(),
                             py::reinterpret_borrow<py::object>(engine));
}

crmflow::Engine& crmflow_unwrap_engine(pybind11::handle engine) {
  if (!py::isinstance<crmflow::PyEngine>(engine)) {
    crmflow::ThrowInvalid(std::string("expected a crmflow Engine (got ") +
                          Py_TYPE(engine.ptr())->tp_name + ")");
  }
  return py::cast<crmflow::PyEngine&>(engine).engine();
}

const crmflow::TimeZone& crmflow_engine_zone(pybind11::handle engine) {
  crmflow_unwrap_engine(engine);
  return py::cast<crmflow::PyEngine&>(engine).zone();
}

bool crmflow_engine_releases_gil(pybind11::handle engine) {
  crmflow_unwrap_engine(engine);
  return py::cast<crmflow::PyEngine&>(engine).release();
}

void crmflow_throw_status(const crmflow::Status& status) {
  crmflow::ThrowStatus(status);
}

crmflow::Timestamp crmflow_time_from_python(pybind11::handle value,
                                            const crmflow::TimeZone& zone,
                                            const char* what) {
  return crmflow::TimestampFromPython(value, zone, what);
}

crmflow::Attributes crmflow_attributes_from_python(
    pybind11::handle value, const crmflow::TimeZone& zone) {
  return crmflow::AttributesFromPython(value, zone);
}

PYBIND11_MODULE(_core, m) {
  using namespace crmflow;
  m.doc() = "crmflow core engine (C++); use the crmflow package instead";

  PyDateTime_IMPORT;
  if (PyDateTimeAPI == nullptr) throw py::error_already_set();
  globals = new Globals();
  py::module_ errors = py::module_::import("crmflow._errors");
  globals->errors_by_code = errors.attr("BY_CODE");
  globals->error_base = errors.attr("Error");
  globals->decimal_cls = py::module_::import("decimal").attr("Decimal");
  globals->json_dumps = py::module_::import("json").attr("dumps");
  globals->json_loads = py::module_::import("json").attr("loads");
  globals->format = py::module_::import("builtins").attr("format");
  py::module_ json_rules = py::module_::import("crmflow._json");
  globals->payload_default = json_rules.attr("default");
  globals->payload_constant = json_rules.attr("parse_constant");
  globals->utc = py::module_::import("datetime").attr("timezone").attr("utc");

  py::class_<Workflow>(m, "Workflow")
      .def(py::init<std::string, int>(), py::arg("name"),
           py::arg("version") = 1)
      .def_property_readonly("name", &Workflow::name)
      .def_property_readonly("version", &Workflow::version)
      .def(
          "add_state",
          [](Workflow& w, py::handle name, const std::string& role) {
            Check(w.AddState(TextArg(name, "state name"),
                             RoleFromString(role)));
          },
          py::arg("name"), py::arg("role") = "normal")
      .def(
          "add_transition",
          [](Workflow& w, py::handle event, py::handle source,
             py::handle target, std::vector<std::string> guards,
             std::vector<std::string> actions, bool internal) {
            TransitionSpec spec;
            spec.event = TextArg(event, "event");
            spec.source = TextArg(source, "source state");
            spec.target = TextArg(target, "target state");
            spec.guards = std::move(guards);
            spec.actions = std::move(actions);
            spec.internal = internal;
            Check(w.AddTransition(std::move(spec)));
          },
          py::arg("event"), py::arg("source"), py::arg("target"),
          py::arg("guards") = std::vector<std::string>(),
          py::arg("actions") = std::vector<std::string>(),
          py::arg("internal") = false)
      .def(
          "add_attribute",
          [](Workflow& w, py::handle name, const std::string& type,
             bool required) {
            AttributeSpec spec;
            spec.name = TextArg(name, "attribute name");
            spec.type = Take(ParseValueType(type));
            spec.required = required;
            Check(w.AddAttribute(std::move(spec)));
          },
          py::arg("name"), py::arg("type") = "text",
          py::arg("required") = false)
      .def("validate",
           [](const Workflow& w) {
             py::list out;
             for (const Problem& p : w.Validate()) {
               py::dict d;
               d["kind"] = ProblemKindName(p.kind);
               d["state"] = p.state;
               d["event"] = p.event;
               d["message"] = p.message;
               d["severity"] = ProblemSeverityName(p.severity);
               out.append(d);
             }
             return out;
           })
      .def("states",
           [](const Workflow& w) {
             py::list out;
             for (int i = 0; i < w.state_count(); ++i) {
               out.append(py::make_tuple(w.StateName(i), RoleName(w.Role(i))));
             }
             return out;
           })
      .def("transitions",
           [](const Workflow& w) {
             py::list out;
             for (const auto& t : w.transitions()) {
               py::dict d;
               d["event"] = w.EventName(t.event);
               d["source"] = w.StateName(t.source);
               d["target"] = w.StateName(t.target);
               d["guards"] = t.guards;
               d["actions"] = t.actions;
               d["internal"] = t.internal;
               out.append(d);
             }
             return out;
           })
      .def("attributes",
           [](const Workflow& w) {
             py::list out;
             for (const auto& a : w.attributes()) {
               out.append(
                   py::make_tuple(a.name, ValueTypeName(a.type), a.required));
             }
             return out;
           })
      .def("events_from",
           [](const Workflow& w, const std::string& state) {
             int id = w.StateId(state);
             if (id == Workflow::kNoId) {
               ThrowStatus(Status(Code::kNotFound,
                                  "workflow \"" + w.name() +
                                      "\": unknown state \"" + state + "\""));
             }
             return w.EventsFrom(id);
           })
      .def("to_dot", &Workflow::ToDot);

  py::class_<Transaction>(m, "Transaction")
      .def_readonly("id", &Transaction::id)
      .def_readonly("kind", &Transaction::kind)
      .def_readonly("state", &Transaction::state)
      .def_readonly("customer_id", &Transaction::customer_id)
      .def_readonly("parent_id", &Transaction::parent_id)
      .def_property_readonly("attributes",
                             [](const Transaction& t) {
                               return AttributesToPython(t.attributes);
                             })
      .def_readonly("version", &Transaction::version)
      .def_readonly("workflow_version", &Transaction::workflow_version)
      .def_property_readonly(
          "created_at", [](const Transaction& t) { return t.created_at.micros; })
      .def_property_readonly(
          "updated_at", [](const Transaction& t) { return t.updated_at.micros; })
      .def_property_readonly("state_entered_at", [](const Transaction& t) {
        return t.state_entered_at.micros;
      })
      .def("__repr__", [](const Transaction& t) {
        return "<_core.Transaction " + t.id + " " + t.kind + " in " + t.state +
               " v" + std::to_string(t.version) + ">";
      });

  py::class_<PyCallContext>(m, "CallContext")
      .def_readonly("transaction", &PyCallContext::transaction)
      .def_property_readonly("case",
                             [](const PyCallContext& c) {
                               return AttributesToPython(
                                   c.transaction.attributes);
                             })
      .def_readonly("event", &PyCallContext::event)
      .def_readonly("from_state", &PyCallContext::from_state)
      .def_readonly("to_state", &PyCallContext::to_state)
      .def_readonly("time", &PyCallContext::time)
      .def_readonly("actor", &PyCallContext::actor)
      .def_readonly("payload", &PyCallContext::payload)
      .def("__repr__", [](const PyCallContext& c) {
        return "<CallContext " + c.transaction.id + " " + c.event + ": " +
               c.from_state + " -> " + c.to_state + ">";
      });

  py::class_<PyEngine>(m, "Engine")
      .def(py::init<const std::string&, py::object, const std::string&>(),
           py::arg("path") = "", py::arg("clock") = py::none(),
           py::arg("zone") = "UTC")
      .def_property_readonly("zone",
                             [](const PyEngine& e) { return e.zone().name(); })
      .def_property_readonly("path", &PyEngine::path)
      .def("close", &PyEngine::Close)
      // What close() refuses, checked before Engine.close runs its close
      // hooks: a close refused inside a callback must leave them in place.
      .def("_check_closable",
           [](const PyEngine&) { RefuseInsideCallback("close()"); })
      .def("now",
           [](PyEngine& e) {
             EngineLock lock(&e.mutex());
             return e.engine().Now().micros;
           })
      .def(
          "register",
          [](PyEngine& e, const Workflow& wf, const std::string& definition) {
            EngineLock lock(&e.mutex());
            RefuseInsideCallback("register()");
            Engine& engine = e.engine();
            Status st;
            {
              MaybeRelease nogil(e.release());
              st = engine.Register(wf, definition);
            }
            Check(st);
          },
          py::arg("workflow"), py::arg("definition") = "")
      .def("kinds",
           [](PyEngine& e) {
             EngineLock lock(&e.mutex());
             return e.engine().kinds();
           })
      .def("workflow",
           [](PyEngine& e, const std::string& kind) {
             EngineLock lock(&e.mutex());
             const Workflow* wf = e.engine().FindWorkflow(kind);
             if (wf == nullptr) {
               ThrowStatus(Status(Code::kNotFound,
                                  "kind \"" + kind + "\" is not registered"));
             }
             return Workflow(*wf);
           })
      .def("stored_workflows",
           [](PyEngine& e) {
             EngineLock lock(&e.mutex());
             auto rows = Take(e.engine().StoredWorkflows());
             py::list out;
             for (const auto& w : rows) {
               out.append(py::make_tuple(w.name, w.version, w.definition));
             }
             return out;
           })
      .def("register_guard",
           [](PyEngine& e, const std::string& name, py::object fn) {
             EngineLock lock(&e.mutex());
             auto held = Hold(std::move(fn));
             e.engine().RegisterGuard(
                 name, [held, name](const CallContext& c,
                                    std::string* reason) {
                   py::gil_scoped_acquire gil;
                   CallbackScope scope;
                   py::object r = (*held)(Snapshot(c));
                   if (py::isinstance<py::tuple>(r)) {
                     py::tuple t = r;
                     if (t.size() == 0 || t.size() > 2) {
                       ThrowInvalid("guard \"" + name + "\" returned a "
                                    "tuple of " + std::to_string(t.size()) +
                                    " (expected (allowed, reason))");
                     }
                     bool ok = py::bool_(t[0]);
                     if (!ok && reason != nullptr && t.size() == 2 &&
                         !t[1].is_none()) {
                       *reason = TextArg(py::str(t[1]), "guard reason");
                     }
                     return ok;
                   }
                   return static_cast<bool>(py::bool_(r));
                 });
           })
      .def("register_action",
           [](PyEngine& e, const std::string& name, py::object fn) {
             EngineLock lock(&e.mutex());
             e.engine().RegisterAction(name, PythonHook(std::move(fn)));
           })
      .def("on_enter",
           [](PyEngine& e, const std::string& kind, const std::string& state,
              py::object fn) {
             EngineLock lock(&e.mutex());
             e.engine().OnEnter(kind, state, PythonHook(std::move(fn)));
           })
      .def("on_exit",
           [](PyEngine& e, const std::string& kind, const std::string& state,
              py::object fn) {
             EngineLock lock(&e.mutex());
             e.engine().OnExit(kind, state, PythonHook(std::move(fn)));
           })
      .def(
          "create",
          [](PyEngine& e, py::handle kind, py::handle id, py::handle customer,
             py::handle parent, py::handle attributes, py::handle time,
             py::handle actor, py::handle source) {
            EngineLock lock(&e.mutex());
            CreateRequest req;
            req.kind = TextArg(kind, "kind");
            req.id = TextArg(id, "id");
            req.customer_id = TextArg(customer, "customer_id");
            req.parent_id = TextArg(parent, "parent_id");
            req.attributes = AttributesFromPython(attributes, e.zone());
            req.time = OptionalTime(time, e.zone(), "time");
            req.actor = TextArg(actor, "actor");
            req.source = TextArg(source, "source");
            Engine& engine = e.engine();
            std::optional<StatusOr<Transaction>> r;
            {
              MaybeRelease nogil(e.release());
              r.emplace(engine.Create(req));
            }
            return Take(std::move(*r));
          },
          py::arg("kind"), py::arg("id"), py::arg("customer_id") = "",
          py::arg("parent_id") = "", py::arg("attributes") = py::none(),
          py::arg("time") = py::none(), py::arg("actor") = "",
          py::arg("source") = "")
      .def("allowed_events",
           [](PyEngine& e, py::handle id) {
             EngineLock lock(&e.mutex());
             return Take(e.engine().AllowedEvents(TextArg(id, "id")));
           })
      .def(
          "set_attributes",
          [](PyEngine& e, py::handle id_arg, py::handle attributes,
             int64_t expected_version) {
            EngineLock lock(&e.mutex());
            std::string id = TextArg(id_arg, "id");
            Attributes attrs = AttributesFromPython(attributes, e.zone());
            Engine& engine = e.engine();
            std::optional<StatusOr<Transaction>> r;
            {
              MaybeRelease nogil(e.release());
              r.emplace(engine.SetAttributes(id, attrs, expected_version));
            }
            return Take(std::move(*r));
          },
          py::arg("id"), py::arg("attributes"), py::arg("expected_version"))
      .def("get",
           [](PyEngine& e, py::handle id_arg) {
             EngineLock lock(&e.mutex());
             std::string id = TextArg(id_arg, "id");
             Engine& engine = e.engine();
             std::optional<StatusOr<Transaction>> r;
             {
               MaybeRelease nogil(e.release());
               r.emplace(engine.Get(id));
             }
             return Take(std::move(*r));
           })
      .def(
          "list",
          [](PyEngine& e, py::handle kind_arg, py::handle state_arg) {
            EngineLock lock(&e.mutex());
            std::string kind = TextArg(kind_arg, "kind");
            std::string state = TextArg(state_arg, "state");
            Engine& engine = e.engine();
            std::optional<StatusOr<std::vector<Transaction>>> r;
            {
              MaybeRelease nogil(e.release());
              r.emplace(engine.List(kind, state));
            }
            return Take(std::move(*r));
          },
          py::arg("kind") = "", py::arg("state") = "")
      .def(
          "transaction_columns",
          [](PyEngine& e, py::handle kind_arg, py::handle state_arg) {
            EngineLock lock(&e.mutex());
            std::string kind = TextArg(kind_arg, "kind");
            std::string state = TextArg(state_arg, "state");
            Engine& engine = e.engine();
            std::optional<StatusOr<std::vector<Transaction>>> r;
            {
              MaybeRelease nogil(e.release());
              r.emplace(engine.List(kind, state));
            }
            return TransactionColumns(Take(std::move(*r)));
          },
          py::arg("kind") = "", py::arg("state") = "")
      .def(
          "history",
          [](PyEngine& e, py::handle transaction_id, py::handle kind,
             py::handle start, py::handle end) {
            EngineLock lock(&e.mutex());
            HistoryQuery q;
            q.transaction_id = TextArg(transaction_id, "transaction_id");
            q.kind = TextArg(kind, "kind");
            q.from = OptionalTime(start, e.zone(), "start");
            q.to = OptionalTime(end, e.zone(), "end");
            Engine& engine = e.engine();
            std::optional<StatusOr<std::vector<HistoryRow>>> r;
            {
              MaybeRelease nogil(e.release());
              r.emplace(engine.History(q));
            }
            return HistoryColumns(Take(std::move(*r)));
          },
          py::arg("transaction_id") = "", py::arg("kind") = "",
          py::arg("start") = py::none(), py::arg("end") = py::none())
      .def(
          "deviations",
          [](PyEngine& e, const std::string& kind) {
            EngineLock lock(&e.mutex());
            Engine& engine = e.engine();
            std::optional<StatusOr<std::vector<Deviation>>> r;
            {
              MaybeRelease nogil(e.release());
              r.emplace(engine.Deviations(kind));
            }
            return DeviationColumns(Take(std::move(*r)));
          },
          py::arg("kind") = "")
      .def("imports",
           [](PyEngine& e) {
             EngineLock lock(&e.mutex());
             auto rows = Take(e.engine().store().QueryImports());
             py::dict d;
             py::list id, file, kind, started, cases, applied, dev, rej, skip;
             for (const auto& r : rows) {
               id.append(r.id);
               file.append(r.file);
               kind.append(r.kind);
               started.append(r.started_at.micros);
               cases.append(r.cases);
               applied.append(r.events_applied);
               dev.append(r.deviations);
               rej.append(r.rejected);
               skip.append(r.skipped);
             }
             d["id"] = id;
             d["file"] = file;
             d["kind"] = kind;
             d["started_at"] = started;
             d["cases"] = cases;
             d["events_applied"] = applied;
             d["deviations"] = dev;
             d["rejected"] = rej;
             d["skipped"] = skip;
             return d;
           })
      .def(
          "replay",
          [](PyEngine& e, py::sequence ids, py::sequence events,
             py::sequence times, py::object actors, py::object payloads,
             py::object sources, int64_t commit_every,
             bool record_deviations) {
            EngineLock lock(&e.mutex());
            const size_t n = py::len(ids);
            if (py::len(events) != n || py::len(times) != n) {
              ThrowInvalid("replay: ids, events and times differ in length");
            }
            auto optional_seq = [n](py::object o,
                                    const char* what) -> py::object {
              if (o.is_none()) return o;
              if (py::len(o) != n) {
                ThrowInvalid(std::string("replay: ") + what +
                             " differs in length from ids");
              }
              return o;
            };
            actors = optional_seq(actors, "actors");
            payloads = optional_seq(payloads, "payloads");
            sources = optional_seq(sources, "sources");
            // Views into the str objects, which the columns keep alive.
            TextColumn id_col(ids, "ids"), event_col(events, "events");
            TextColumn actor_col(actors, "actors");
            TextColumn payload_col(payloads, "payloads", true);
            TextColumn source_col(sources, "sources");
            // Columns rather than one ReplayEventRef per event: 40 bytes
            // an event instead of 104, and absent columns cost nothing.
            std::vector<std::string_view> id_views = id_col.Views(n);
            std::vector<std::string_view> event_views = event_col.Views(n);
            std::vector<int64_t> time_values = TimeColumn(times, n, e.zone());
            std::vector<std::string_view> actor_views = actor_col.Views(n);
            std::vector<std::string_view> payload_views =
                payload_col.Views(n);
            std::vector<std::string_view> source_views = source_col.Views(n);
            ReplayColumns columns;
            columns.ids = id_views;
            columns.events = event_views;
            columns.times = time_values;
            columns.actors = actor_views;
            columns.payloads = payload_views;
            columns.sources = source_views;
            ReplayOptions options;
            options.commit_every = commit_every;
            options.record_deviations = record_deviations;
            Engine& engine = e.engine();
            std::optional<StatusOr<ReplaySummary>> r;
            {
              MaybeRelease nogil(true);
              r.emplace(engine.Replay(columns, options));
            }
            ReplaySummary s = Take(std::move(*r));
            py::dict d;
            d["applied"] = s.applied;
            d["deviations"] = s.deviations;
            d["skipped"] = s.skipped;
            return d;
          },
          py::arg("ids"), py::arg("events"), py::arg("times"),
          py::arg("actors") = py::none(), py::arg("payloads") = py::none(),
          py::arg("sources") = py::none(), py::arg("commit_every") = 0,
          py::arg("record_deviations") = true)
      // An explicit transaction keeps the engine lock on the thread that
      // began it until the matching commit() or rollback(), so other
      // threads' calls wait instead of landing inside it (EngineMutex).
      .def("begin",
           [](PyEngine& e) {
             RefuseInsideCallback("begin()");
             EngineLock lock(&e.mutex());
             Engine& engine = e.engine();
             Status st;
             {
               MaybeRelease nogil(e.release());
               st = engine.Begin();
             }
             e.SyncTransactions();
             Check(st);
           })
      .def("commit",
           [](PyEngine& e) {
             RefuseInsideCallback("commit()");
             (void)RefuseOtherThreadsTransaction(e, "commit()", false);
             EngineLock lock(&e.mutex());
             Engine& engine = e.engine();
             Status st;
             {
               MaybeRelease nogil(e.release());
               st = engine.Commit();
             }
             e.SyncTransactions();
             Check(st);
           })
      .def("rollback",
           [](PyEngine& e) {
             RefuseInsideCallback("rollback()");
             // The transaction of a thread that has exited: nobody else
             // could end its levels, so all of them go.
             bool abandoned = RefuseOtherThreadsTransaction(e, "rollback()",
                                                           true);
             EngineLock lock(&e.mutex(), {},
                             abandoned ? EngineMutex::TakeOver::kAbandoned
                                       : EngineMutex::TakeOver::kNever);
             Engine& engine = e.engine();
             Status st;
             if (abandoned) {
               while (st.ok() && engine.store().depth() > 0) {
                 st = engine.Rollback();
               }
             } else {
               st = engine.Rollback();
             }
             e.SyncTransactions();
             Check(st);
           })
      .def("report",
           [](PyEngine& e) {
             EngineLock lock(&e.mutex());
             Engine& engine = e.engine();
             std::optional<StatusOr<std::vector<KindReport>>> r;
             {
               MaybeRelease nogil(e.release());
               r.emplace(engine.Report());
             }
             return ReportToPython(Take(std::move(*r)));
           })
      .def(
          "import_event_log",
          [](PyEngine& e, const std::string& path, const py::dict& m) {
            EngineLock lock(&e.mutex());
            EventLogMapping mapping;
            mapping.common = CommonFromDict(m);
            Opt(m, "activity_column", &mapping.activity_column);
            Opt(m, "time_column", &mapping.time_column);
            Opt(m, "actor_column", &mapping.actor_column);
            Opt(m, "payload_columns", &mapping.payload_columns);
            mapping.activity_map = PairsOpt(m, "activity_map");
            mapping.status_map = PairsOpt(m, "status_map");
            Engine& engine = e.engine();
            std::optional<StatusOr<ImportSummary>> r;
            {
              MaybeRelease nogil(true);
              r.emplace(ImportEventLog(engine, path, mapping));
            }
            return SummaryToPython(Take(std::move(*r)));
          },
          py::arg("path"), py::arg("mapping"))
      .def(
          "import_milestones",
          [](PyEngine& e, const std::string& path, const py::dict& m) {
            EngineLock lock(&e.mutex());
            MilestoneMapping mapping;
            mapping.common = CommonFromDict(m);
            Opt(m, "created_column", &mapping.created_column);
            Opt(m, "status_column", &mapping.status_column);
            mapping.status_map = PairsOpt(m, "status_map");
            if (m.contains("milestones") && !m["milestones"].is_none()) {
              for (auto item :
                   py::reinterpret_borrow<py::iterable>(m["milestones"])) {
                py::tuple t(py::reinterpret_borrow<py::object>(item));
                if (t.size() != 2) {
                  ThrowInvalid("mapping milestones: expected (column, "
                               "[event, ...]) pairs");
                }
                Milestone ms;
                ms.column = py::cast<std::string>(t[0]);
                if (PyUnicode_Check(t[1].ptr())) {
                  ms.events.push_back(py::cast<std::string>(t[1]));
                } else {
                  ms.events = py::cast<std::vector<std::string>>(t[1]);
                }
                mapping.milestones.push_back(std::move(ms));
              }
            }
            Engine& engine = e.engine();
            std::optional<StatusOr<ImportSummary>> r;
            {
              MaybeRelease nogil(true);
              r.emplace(ImportMilestones(engine, path, mapping));
            }
            return SummaryToPython(Take(std::move(*r)));
          },
          py::arg("path"), py::arg("mapping"));

  // fire bypasses pybind11's dispatcher (see FireMethod).
  InstallFire(m.attr("Engine"));

  m.def(
      "parse_timestamp",
      [](py::handle text, py::handle format, py::handle zone) {
        TimeZone tz = Take(TimeZone::Load(TextArg(zone, "zone")));
        return Take(ParseTimestamp(TextArg(text, "time"),
                                   TextArg(format, "time format"), tz))
            .micros;
      },
      py::arg("text"), py::arg("format") = "", py::arg("zone") = "UTC");
  m.def(
      "format_local",
      [](int64_t micros, const std::string& zone) {
        TimeZone tz = Take(TimeZone::Load(zone));
        return tz.FormatLocal(Timestamp{micros});
      },
      py::arg("micros"), py::arg("zone"));
  m.def(
      "decimal_round",
      [](const std::string& text, int places) {
        return Take(Decimal::Parse(text)).Round(places).ToString();
      },
      py::arg("text"), py::arg("places"));
  crmflow_register_analytics(m);
  crmflow_register_service(m);
  crmflow_register_routing(m);
  crmflow_register_rules(m);
  crmflow_register_approvals(m);
}
