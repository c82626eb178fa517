// Errors are exceptions whose message carries the offending values, so a user reading
// "hwledger: error: ..." learns what was wrong without a debugger.
#pragma once
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace hwledger {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Bad input from outside (files, requests, flags): the caller reports it and carries on.
class InputError : public Error {
 public:
  using Error::Error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

template <typename... Args>
[[noreturn]] void fail_input(fmt::format_string<Args...> f, Args&&... args) {
  throw InputError(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace hwledger

// HW_CHECK(cond, "fmt", args...): throws hwledger::Error with the formatted message.
#define HW_CHECK(cond, ...)                  \
  do {                                       \
    if (!(cond)) ::hwledger::fail(__VA_ARGS__); \
  } while (0)
