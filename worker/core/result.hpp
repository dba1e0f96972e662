#pragma once
// The one error convention of chatstream: a fallible call returns Result<T> (or Status), which holds
// either the value or an Error: an Errc (core/errc.hpp: what the client sees, the HTTP status, whether
// to retry) and a message. Asynchronous calls hand their callback a Result<T>/Status the same way.
// libuv calls keep their negative codes at the call site and are turned into an Error (with
// uv_strerror) where they cross into our own code.

#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "core/errc.hpp"

namespace chatstream {

struct Error {
  Error(Errc code, std::string message) : code(code), message(std::move(message)) {}
  // Failures that never reach a client (configuration, start-up) need no code of their own.
  explicit Error(std::string message) : message(std::move(message)) {}
  Errc code = Errc::kInternal;
  std::string message;  // safe to show to a user when the error reaches a client
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}           // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}       // NOLINT
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)) {}  // NOLINT
  static Status success() { return Status(); }
  bool ok() const { return !error_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *error_; }

 private:
  std::optional<Error> error_;
};

}  // namespace chatstream
