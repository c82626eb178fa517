#include "server/json_fields.h"

#include <fmt/format.h>

#include <cmath>

#include "server/api_error.h"

namespace hwledger::server {

Json parse_json_body(const std::string& body) {
  if (body.empty()) throw_invalid("the request body is empty; expected a JSON object");
  Json doc;
  try {
    doc = Json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    // e.what() reads "[json.exception.parse_error.101] parse error at line 1, column 9: ..."
    // (or out_of_range.406 for a number too large for a double).
    std::string what = e.what();
    const auto pos = what.find("] ");
    throw_invalid(fmt::format("the request body is not valid JSON: {}",
                              pos == std::string::npos ? what : what.substr(pos + 2)));
  }
  if (!doc.is_object())
    throw_invalid(
        fmt::format("the request body must be a JSON object, got {}", describe_value(doc)));
  return doc;
}

std::string describe_value(const Json& value) {
  auto clip = [](std::string s) {
    if (s.size() > 40) s = s.substr(0, 37) + "...";
    return s;
  };
  const std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  switch (value.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return "a boolean (" + text + ")";
    case Json::value_t::string:
      return "a string (" + clip(text) + ")";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "an integer (" + text + ")";
    case Json::value_t::number_float:
      return "a number (" + text + ")";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::object:
      return "an object";
    default:
      return "a " + std::string(value.type_name());
  }
}

std::string field_name(std::string_view parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  return fmt::format("{}.{}", parent, key);
}

std::string field_name(std::string_view parent, size_t index) {
  return fmt::format("{}[{}]", parent, index);
}

void throw_type_error(std::string_view name, std::string_view expected, const Json& got) {
  throw ApiError(ErrorKind::InvalidRequest,
                 fmt::format("'{}' must be {}, got {}", name, expected, describe_value(got)),
                 std::string(name), "invalid_type");
}

void throw_missing(std::string_view name, std::string_view expected) {
  throw ApiError(ErrorKind::InvalidRequest, fmt::format("'{}' is required ({})", name, expected),
                 std::string(name), "missing_required_parameter");
}

namespace {
const Json* find(const Json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(std::string(key));
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}
}  // namespace

std::optional<std::string> get_string(const Json& object, std::string_view key,
                                      std::string_view parent) {
  const Json* v = find(object, key);
  if (!v) return std::nullopt;
  if (!v->is_string()) throw_type_error(field_name(parent, key), "a string", *v);
  return v->get<std::string>();
}

std::optional<double> get_number(const Json& object, std::string_view key,
                                 std::string_view parent) {
  const Json* v = find(object, key);
  if (!v) return std::nullopt;
  if (!v->is_number()) throw_type_error(field_name(parent, key), "a number", *v);
  const double d = v->get<double>();
  if (!std::isfinite(d)) throw_type_error(field_name(parent, key), "a finite number", *v);
  return d;
}

std::optional<int64_t> get_integer(const Json& object, std::string_view key,
                                   std::string_view parent) {
  const Json* v = find(object, key);
  if (!v) return std::nullopt;
  if (v->is_number_integer()) return v->get<int64_t>();
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX))
      throw_type_error(field_name(parent, key), "a 64-bit integer", *v);
    return static_cast<int64_t>(u);
  }
  if (v->is_number_float()) {  // 16.0 from clients that only have doubles
    const double d = v->get<double>();
    if (std::isfinite(d) && std::floor(d) == d && std::fabs(d) < 9.0e15)
      return static_cast<int64_t>(d);
  }
  throw_type_error(field_name(parent, key), "an integer", *v);
}

std::optional<bool> get_bool(const Json& object, std::string_view key, std::string_view parent) {
  const Json* v = find(object, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) throw_type_error(field_name(parent, key), "a boolean (true or false)", *v);
  return v->get<bool>();
}

const Json* get_array(const Json& object, std::string_view key, std::string_view parent) {
  const Json* v = find(object, key);
  if (v && !v->is_array()) throw_type_error(field_name(parent, key), "an array", *v);
  return v;
}

const Json* get_object(const Json& object, std::string_view key, std::string_view parent) {
  const Json* v = find(object, key);
  if (v && !v->is_object()) throw_type_error(field_name(parent, key), "an object", *v);
  return v;
}

void check_range(double value, double lo, double hi, std::string_view name) {
  if (!(value >= lo && value <= hi))
    throw ApiError(ErrorKind::InvalidRequest,
                   fmt::format("'{}' must be between {} and {}, got {}", name, lo, hi, value),
                   std::string(name), "invalid_value");
}

}  // namespace hwledger::server
