// SPDX-License-Identifier: Apache-2.0
// `cowpi::expected<T>`: the value-or-error result every fallible cowpi call returns.
#pragma once

#include "cowpi/protocol/errc.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

/// Aborts with a message when `cond` is false. Always on, also in release
/// builds: it guards invariants of cowpi itself, never untrusted input.
#define COWPI_ASSERT(cond)                                                                       \
  do {                                                                                           \
    if (!(cond)) {                                                                               \
      (void)std::fprintf(stderr, "%s:%d: COWPI_ASSERT failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                              \
    }                                                                                            \
  } while (0)

namespace cowpi {

/// An error: a code to act on and a context that is safe to log (it never holds
/// plaintext, key bytes or user ids).
struct error {
  errc code = errc::internal;
  std::string context;

  /// Returns "code: context", or just the code when there is no context.
  std::string message() const {
    std::string s{to_string(code)};
    if (!context.empty()) {
      s += ": ";
      s += context;
    }
    return s;
  }
};

/// Wraps an error value so that it converts into any `expected<T, E>`.
template <class E>
class unexpected {
public:
  explicit unexpected(E e) : value_(std::move(e)) {}
  E& value() & noexcept { return value_; }
  E&& value() && noexcept { return std::move(value_); }
  const E& value() const& noexcept { return value_; }

private:
  E value_;
};

/// Returns `unexpected<error>{{code, context}}`; the usual way to fail.
inline unexpected<error> fail(errc code, std::string context = {}) {
  return unexpected<error>{error{code, std::move(context)}};
}

/// A value of type `T` or an error of type `E`, with the surface of C++23's
/// `std::expected` that cowpi uses. Accessing the wrong alternative asserts.
template <class T, class E = error>
class [[nodiscard]] expected {
public:
  using value_type = T;
  using error_type = E;

  expected() requires std::is_default_constructible_v<T> : v_(std::in_place_index<0>) {}
  expected(const T& v) : v_(std::in_place_index<0>, v) {}  // NOLINT(google-explicit-constructor)
  expected(T&& v) : v_(std::in_place_index<0>, std::move(v)) {}  // NOLINT
  template <class G>
  expected(unexpected<G> u)  // NOLINT(google-explicit-constructor)
      : v_(std::in_place_index<1>, E(std::move(u).value())) {}

  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  T& value() & {
    COWPI_ASSERT(has_value());
    return std::get<0>(v_);
  }
  const T& value() const& {
    COWPI_ASSERT(has_value());
    return std::get<0>(v_);
  }
  T&& value() && {
    COWPI_ASSERT(has_value());
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  E& error() & {
    COWPI_ASSERT(!has_value());
    return std::get<1>(v_);
  }
  const E& error() const& {
    COWPI_ASSERT(!has_value());
    return std::get<1>(v_);
  }
  E&& error() && {
    COWPI_ASSERT(!has_value());
    return std::get<1>(std::move(v_));
  }

  template <class U>
  T value_or(U&& alt) const& {
    return has_value() ? std::get<0>(v_) : static_cast<T>(std::forward<U>(alt));
  }

private:
  std::variant<T, E> v_;
};

/// `expected<void>`: success or an error.
template <class E>
class [[nodiscard]] expected<void, E> {
public:
  using value_type = void;
  using error_type = E;

  expected() = default;
  template <class G>
  expected(unexpected<G> u)  // NOLINT(google-explicit-constructor)
      : err_(std::in_place_index<1>, E(std::move(u).value())) {}

  bool has_value() const noexcept { return err_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }
  void value() const { COWPI_ASSERT(has_value()); }

  E& error() & {
    COWPI_ASSERT(!has_value());
    return std::get<1>(err_);
  }
  const E& error() const& {
    COWPI_ASSERT(!has_value());
    return std::get<1>(err_);
  }
  E&& error() && {
    COWPI_ASSERT(!has_value());
    return std::get<1>(std::move(err_));
  }

private:
  std::variant<std::monostate, E> err_;
};

/// Propagates an error: `COWPI_TRY(x, f());` declares `x` from a successful
/// result or returns the error from the enclosing function.
#define COWPI_TRY_CONCAT_(a, b) a##b
#define COWPI_TRY_NAME_(line) COWPI_TRY_CONCAT_(cowpi_try_tmp_, line)
#define COWPI_TRY(decl, expr)                                                 \
  auto COWPI_TRY_NAME_(__LINE__) = (expr);                                    \
  if (!COWPI_TRY_NAME_(__LINE__).has_value())                                 \
    return ::cowpi::unexpected{std::move(COWPI_TRY_NAME_(__LINE__)).error()}; \
  decl = std::move(COWPI_TRY_NAME_(__LINE__)).value()

/// Propagates the error of an `expected<void>` expression.
#define COWPI_TRY_VOID(expr)                                       \
  do {                                                             \
    auto cowpi_try_v_ = (expr);                                    \
    if (!cowpi_try_v_.has_value())                                 \
      return ::cowpi::unexpected{std::move(cowpi_try_v_).error()}; \
  } while (0)

}  // namespace cowpi
