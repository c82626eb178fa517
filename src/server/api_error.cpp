#include "server/api_error.h"

#include <nlohmann/json.hpp>

namespace hwledger::server {

ApiError::ApiError(ErrorKind kind, std::string message, std::string param, std::string code)
    : std::runtime_error(std::move(message)),
      kind_(kind),
      param_(std::move(param)),
      code_(std::move(code)) {}

void throw_invalid(std::string message, std::string param) {
  throw ApiError(ErrorKind::InvalidRequest, std::move(message), std::move(param));
}

int http_status(ErrorKind kind, ApiFlavor flavor) {
  switch (kind) {
    case ErrorKind::InvalidRequest:
      return 400;
    case ErrorKind::Authentication:
      return 401;
    case ErrorKind::NotFound:
      return 404;
    case ErrorKind::RequestTooLarge:
      return 413;
    case ErrorKind::Overloaded:
      return flavor == ApiFlavor::Anthropic ? 529 : 503;
    case ErrorKind::Timeout:
      return 408;
    case ErrorKind::Internal:
      return 500;
  }
  return 500;
}

namespace {

const char* openai_type(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Internal:
    case ErrorKind::Overloaded:
    case ErrorKind::Timeout:
      return "server_error";
    default:
      return "invalid_request_error";  // what OpenAI sends for 400, 401, 404 and 413
  }
}

const char* openai_default_code(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Authentication:
      return "invalid_api_key";
    case ErrorKind::NotFound:
      return "not_found";
    case ErrorKind::RequestTooLarge:
      return "request_too_large";
    case ErrorKind::Overloaded:
      return "overloaded";
    case ErrorKind::Timeout:
      return "timeout";
    default:
      return nullptr;
  }
}

const char* anthropic_type(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::InvalidRequest:
      return "invalid_request_error";
    case ErrorKind::Authentication:
      return "authentication_error";
    case ErrorKind::NotFound:
      return "not_found_error";
    case ErrorKind::RequestTooLarge:
      return "request_too_large";
    case ErrorKind::Overloaded:
      return "overloaded_error";
    case ErrorKind::Timeout:
      return "timeout_error";
    case ErrorKind::Internal:
      return "api_error";
  }
  return "api_error";
}

}  // namespace

std::string error_body(const ApiError& error, ApiFlavor flavor) {
  nlohmann::ordered_json body;
  if (flavor == ApiFlavor::Anthropic) {
    body["type"] = "error";
    body["error"] = {{"type", anthropic_type(error.kind())}, {"message", error.what()}};
  } else {
    nlohmann::ordered_json inner;
    inner["message"] = error.what();
    inner["type"] = openai_type(error.kind());
    inner["param"] =
        error.param().empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(error.param());
    const char* code = openai_default_code(error.kind());
    if (!error.code().empty())
      inner["code"] = error.code();
    else if (code)
      inner["code"] = code;
    else
      inner["code"] = nullptr;
    body["error"] = std::move(inner);
  }
  return body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace hwledger::server
