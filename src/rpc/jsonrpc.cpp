#include "rpc/jsonrpc.h"

#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace hwledger::rpc {

namespace {

// The deepest nesting of arrays and objects in `text`, outside strings; stops early past `limit`.
int nesting_depth(std::string_view text, int limit) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"')
      in_string = true;
    else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if ((c == ']' || c == '}') && depth > 0)
      --depth;
  }
  return deepest;
}

const char* type_name(const json& value) {
  return value.type_name();
}

ParsedLine error_line(const json& id, int code, std::string_view message, json data) {
  ParsedLine out;
  out.error_reply = make_error(id, code, message, data);
  return out;
}

}  // namespace

void throw_invalid_param(std::string_view field, std::string_view reason) {
  throw RpcError(kInvalidParams, fmt::format("invalid params: {}: {}", field, reason),
                 json{{"field", field}, {"reason", reason}});
}

bool is_blank(std::string_view line) {
  return line.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

ParsedLine parse_line(std::string_view line, int max_depth) {
  if (nesting_depth(line, max_depth) > max_depth) {
    return error_line(nullptr, kInvalidRequest, "invalid request: JSON nested too deeply",
                      {{"reason", fmt::format("nesting deeper than {} levels", max_depth)}});
  }
  json message;
  try {
    message = json::parse(line.begin(), line.end());
  } catch (const json::exception& e) {
    return error_line(nullptr, kParseError, "parse error: the line is not valid JSON",
                      {{"reason", e.what()}});
  }
  if (message.is_array()) {
    return error_line(nullptr, kInvalidRequest, "invalid request: batches are not supported",
                      {{"reason", "send one request object per line"}});
  }
  if (!message.is_object()) {
    return error_line(nullptr, kInvalidRequest, "invalid request: not a JSON object",
                      {{"reason", fmt::format("the line holds a JSON {}", type_name(message))}});
  }

  Request request;
  if (auto it = message.find("id"); it != message.end()) {
    if (!it->is_string() && !it->is_number() && !it->is_null()) {
      return error_line(
          nullptr, kInvalidRequest, "invalid request: bad id",
          {{"field", "id"},
           {"reason", fmt::format("must be a string, a number or null, not {}", type_name(*it))}});
    }
    request.id = *it;
    request.has_id = true;
  }
  const json& id = request.id;  // null until known
  auto version = message.find("jsonrpc");
  if (version == message.end() || *version != "2.0") {
    return error_line(id, kInvalidRequest, "invalid request: \"jsonrpc\" must be \"2.0\"",
                      {{"field", "jsonrpc"}, {"reason", "must be the string \"2.0\""}});
  }
  auto method = message.find("method");
  if (method == message.end()) {
    bool is_response = message.contains("result") || message.contains("error");
    return error_line(
        id, kInvalidRequest, "invalid request: no method",
        {{"field", "method"},
         {"reason", is_response ? "the engine accepts requests, not responses" : "required"}});
  }
  if (!method->is_string() || method->get_ref<const std::string&>().empty()) {
    return error_line(id, kInvalidRequest, "invalid request: bad method",
                      {{"field", "method"},
                       {"reason", fmt::format("must be a non-empty string, not {}",
                                              method->is_string() ? "\"\"" : type_name(*method))}});
  }
  request.method = method->get<std::string>();
  if (auto params = message.find("params"); params != message.end() && !params->is_null()) {
    if (params->is_array()) {
      return error_line(id, kInvalidParams, "invalid params: params must be an object",
                        {{"field", "params"}, {"reason", "parameters are passed by name"}});
    }
    if (!params->is_object()) {
      return error_line(id, kInvalidRequest, "invalid request: bad params",
                        {{"field", "params"},
                         {"reason", fmt::format("must be an object, not {}", type_name(*params))}});
    }
    request.params = std::move(*params);
  }
  ParsedLine out;
  out.request = std::move(request);
  return out;
}

json make_result(const json& id, json result) {
  return json{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

json make_error(const json& id, int code, std::string_view message, const json& data) {
  json error = {{"code", code}, {"message", message}};
  if (!data.is_null()) error["data"] = data;
  return json{{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(error)}};
}

json make_error(const json& id, const RpcError& error) {
  return make_error(id, error.code(), error.message(), error.data());
}

json make_notification(std::string_view method, json params) {
  return json{{"jsonrpc", "2.0"}, {"method", method}, {"params", std::move(params)}};
}

std::string to_line(const json& message) {
  return message.dump(-1, ' ', false, json::error_handler_t::replace);
}

// --- Params ---------------------------------------------------------------------------------

const json* Params::find(std::string_view name) const {
  auto it = params_.find(name);
  return it == params_.end() || it->is_null() ? nullptr : &*it;
}

bool Params::has(std::string_view name) const {
  return find(name) != nullptr;
}

std::optional<std::string> Params::opt_string(std::string_view name, size_t max_bytes) const {
  const json* value = find(name);
  if (!value) return std::nullopt;
  if (!value->is_string()) {
    throw_invalid_param(name, fmt::format("must be a string, not {}", type_name(*value)));
  }
  const auto& text = value->get_ref<const std::string&>();
  if (text.size() > max_bytes) {
    throw_invalid_param(name, fmt::format("longer than {} bytes ({})", max_bytes, text.size()));
  }
  return text;
}

std::string Params::string(std::string_view name, size_t max_bytes) const {
  auto value = opt_string(name, max_bytes);
  if (!value) throw_invalid_param(name, "required");
  return *value;
}

std::optional<int64_t> Params::opt_integer(std::string_view name, int64_t min, int64_t max) const {
  const json* value = find(name);
  if (!value) return std::nullopt;
  if (!value->is_number_integer()) {
    throw_invalid_param(name, fmt::format("must be an integer, not {}",
                                          value->is_number() ? value->dump() : type_name(*value)));
  }
  bool too_big =
      value->is_number_unsigned() &&
      value->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  int64_t v = too_big ? std::numeric_limits<int64_t>::max() : value->get<int64_t>();
  if (too_big || v < min || v > max) {
    throw_invalid_param(name, fmt::format("{} is outside [{}, {}]", value->dump(), min, max));
  }
  return v;
}

int64_t Params::integer(std::string_view name, int64_t min, int64_t max) const {
  auto value = opt_integer(name, min, max);
  if (!value) throw_invalid_param(name, "required");
  return *value;
}

std::optional<uint64_t> Params::opt_unsigned(std::string_view name) const {
  const json* value = find(name);
  if (!value) return std::nullopt;
  bool non_negative =
      value->is_number_unsigned() || (value->is_number_integer() && value->get<int64_t>() >= 0);
  if (!non_negative) {
    throw_invalid_param(name, fmt::format("must be a non-negative integer, not {}",
                                          value->is_number() ? value->dump() : type_name(*value)));
  }
  return value->get<uint64_t>();
}

std::optional<double> Params::opt_number(std::string_view name, double min, double max) const {
  const json* value = find(name);
  if (!value) return std::nullopt;
  if (!value->is_number()) {
    throw_invalid_param(name, fmt::format("must be a number, not {}", type_name(*value)));
  }
  double v = value->get<double>();
  if (!std::isfinite(v) || v < min || v > max) {
    throw_invalid_param(name, fmt::format("{} is outside [{}, {}]", value->dump(), min, max));
  }
  return v;
}

std::optional<bool> Params::opt_bool(std::string_view name) const {
  const json* value = find(name);
  if (!value) return std::nullopt;
  if (!value->is_boolean()) {
    throw_invalid_param(name, fmt::format("must be true or false, not {}", type_name(*value)));
  }
  return value->get<bool>();
}

}  // namespace hwledger::rpc
