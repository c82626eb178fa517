// Reading request bodies: typed field access whose errors name the field, the expected type and
// what was sent ("'max_tokens' must be an integer, got a string (\"ten\")").
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace hwledger::server {

using Json = nlohmann::ordered_json;  // keeps the client's key order (tools, arguments)

// Parses a request body that must be a JSON object; 400 with the parser's position otherwise.
Json parse_json_body(const std::string& body);

// "a string (\"hot\")", "an array", "null"...: how errors describe a value.
std::string describe_value(const Json& value);

// field(path, key) = "messages[2].content" style names for messages.
std::string field_name(std::string_view parent, std::string_view key);
std::string field_name(std::string_view parent, size_t index);

// Accessors return nullopt when the key is absent or null; a value of another type is a 400
// naming `parent.key`.
std::optional<std::string> get_string(const Json& object, std::string_view key,
                                      std::string_view parent = {});
std::optional<double> get_number(const Json& object, std::string_view key,
                                 std::string_view parent = {});
std::optional<int64_t> get_integer(const Json& object, std::string_view key,
                                   std::string_view parent = {});
std::optional<bool> get_bool(const Json& object, std::string_view key,
                             std::string_view parent = {});
// Pointers into `object` (null when absent or null).
const Json* get_array(const Json& object, std::string_view key, std::string_view parent = {});
const Json* get_object(const Json& object, std::string_view key, std::string_view parent = {});

// 400 "'name' must be between lo and hi, got v" unless lo <= v <= hi.
void check_range(double value, double lo, double hi, std::string_view name);

[[noreturn]] void throw_type_error(std::string_view name, std::string_view expected,
                                   const Json& got);
[[noreturn]] void throw_missing(std::string_view name, std::string_view expected);

}  // namespace hwledger::server
