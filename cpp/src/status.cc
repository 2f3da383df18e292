// status.cc: names and text forms of Status codes.

#include "crmflow/status.h"

namespace crmflow {

const char* CodeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "ok";
    case Code::kInvalidArgument:
      return "invalid argument";
    case Code::kNotFound:
      return "not found";
    case Code::kAlreadyExists:
      return "already exists";
    case Code::kNotAllowed:
      return "not allowed";
    case Code::kGuardRefused:
      return "guard refused";
    case Code::kConcurrentUpdate:
      return "concurrent update";
    case Code::kParseError:
      return "parse error";
    case Code::kValidationError:
      return "validation error";
    case Code::kStoreError:
      return "store error";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(CodeName(code_)) + ": " + message_;
}

}  // namespace crmflow
