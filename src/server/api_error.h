// Errors as each API reports them: one ApiError, two shapes.
//   OpenAI:    {"error": {"message", "type", "param", "code"}}
//   Anthropic: {"type": "error", "error": {"type", "message"}}
#pragma once
#include <stdexcept>
#include <string>

namespace hwledger::server {

enum class ApiFlavor { OpenAI, Anthropic };

enum class ErrorKind {
  InvalidRequest,   // 400
  Authentication,   // 401
  NotFound,         // 404
  RequestTooLarge,  // 413
  Overloaded,       // 503 (OpenAI) / 529 (Anthropic), with Retry-After
  Timeout,          // 408
  Internal,         // 500
};

class ApiError : public std::runtime_error {
 public:
  ApiError(ErrorKind kind, std::string message, std::string param = {}, std::string code = {});
  ErrorKind kind() const { return kind_; }
  const std::string& param() const { return param_; }  // the offending field ("" when none)
  const std::string& code() const { return code_; }

 private:
  ErrorKind kind_;
  std::string param_, code_;
};

[[noreturn]] void throw_invalid(std::string message, std::string param = {});

int http_status(ErrorKind kind, ApiFlavor flavor);
// The response body in the flavor's shape.
std::string error_body(const ApiError& error, ApiFlavor flavor);

}  // namespace hwledger::server
