// JSON-RPC 2.0 messages of the sidecar protocol (../../../shared/SPEC.md, "JSON-RPC over stdio"):
// parsing and checking one input line, building replies and notifications, and reading typed
// params with errors that say which field was wrong and why.
#pragma once
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace hwledger::rpc {

using json = nlohmann::json;

// Standard JSON-RPC codes, then the engine's own (-32000..-32099; docs/process-model.md).
enum ErrorCode : int {
  kParseError = -32700,      // the line is not JSON
  kInvalidRequest = -32600,  // JSON, but not a request object (or the line is too long)
  kMethodNotFound = -32601,
  kInvalidParams = -32602,  // data: {field, reason}
  kInternalError = -32603,
  kEngineError = -32000,  // an unexpected failure inside the engine (data: {reason})
  kNoModel = -32001,      // the method needs a loaded model
  kBusy = -32002,         // scheduler queue full, or a bench holds the engine
  kDuplicateRequestId = -32003,
  kUnknownRequestId = -32004,  // cancel of a request that is not running
  kModelLoadFailed = -32005,
  kShuttingDown = -32006,
  kModelPinned = -32007,  // the HTTP server serves the loaded model: it cannot be swapped
};

// Thrown by handlers; becomes {"error": {code, message, data}} on the request's id.
class RpcError : public std::exception {
 public:
  RpcError(int code, std::string message, json data = nullptr)
      : code_(code), message_(std::move(message)), data_(std::move(data)) {}
  int code() const { return code_; }
  const std::string& message() const { return message_; }
  const json& data() const { return data_; }
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  int code_;
  std::string message_;
  json data_;
};

// -32602 for one field: message "invalid params: <field>: <reason>", data {field, reason}.
[[noreturn]] void throw_invalid_param(std::string_view field, std::string_view reason);

struct Request {
  json id;              // string, number or null; only meaningful when has_id
  bool has_id = false;  // false: a notification (executed, never answered)
  std::string method;
  json params = json::object();  // always an object
};

// One line checked against JSON-RPC 2.0: either a request, or the error reply to send (its id is
// the request's when that much could be read, null otherwise). Lines nested deeper than
// `max_depth` are refused before parsing (nlohmann::json would recurse on them).
struct ParsedLine {
  std::optional<Request> request;
  json error_reply;  // set when !request
};
inline constexpr int kMaxJsonDepth = 64;
ParsedLine parse_line(std::string_view line, int max_depth = kMaxJsonDepth);

// True when the line holds only JSON whitespace (blank lines are ignored, not answered).
bool is_blank(std::string_view line);

json make_result(const json& id, json result);
json make_error(const json& id, int code, std::string_view message, const json& data = nullptr);
json make_error(const json& id, const RpcError& error);
json make_notification(std::string_view method, json params);

// Serializes one message as a line (no '\n'); invalid UTF-8 in strings becomes U+FFFD instead
// of throwing.
std::string to_line(const json& message);

// Typed access to a params object; every failure is an invalid-params RpcError naming the field.
class Params {
 public:
  explicit Params(const json& params) : params_(params) {}

  // Present and not null.
  bool has(std::string_view name) const;
  const json* find(std::string_view name) const;  // null when absent or null

  std::string string(std::string_view name, size_t max_bytes = 4096) const;
  std::optional<std::string> opt_string(std::string_view name, size_t max_bytes = 4096) const;
  int64_t integer(std::string_view name, int64_t min, int64_t max) const;
  std::optional<int64_t> opt_integer(std::string_view name, int64_t min, int64_t max) const;
  std::optional<uint64_t> opt_unsigned(std::string_view name) const;
  // A finite number in [min, max] (integers accepted).
  std::optional<double> opt_number(std::string_view name, double min, double max) const;
  std::optional<bool> opt_bool(std::string_view name) const;

 private:
  const json& params_;
};

}  // namespace hwledger::rpc
