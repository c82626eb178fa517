#include "chat/python.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "chat/callable.h"
#include "chat/text.h"

namespace hwledger::chat {

std::string float_repr(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char buf[64];
  const auto result = std::to_chars(buf, buf + sizeof(buf), x, std::chars_format::scientific);
  const std::string_view sci(buf, result.ptr - buf);  // e.g. "-1.2345e+02"
  const size_t e_pos = sci.find('e');
  std::string_view mantissa = sci.substr(0, e_pos);
  const int exponent = std::stoi(std::string(sci.substr(e_pos + 1)));
  std::string sign;
  if (!mantissa.empty() && mantissa[0] == '-') {
    sign = "-";
    mantissa.remove_prefix(1);
  }
  std::string digits;
  for (const char c : mantissa) {
    if (c != '.') digits.push_back(c);
  }
  const int n = static_cast<int>(digits.size());
  if (exponent >= -4 && exponent < 16) {
    const int point = exponent + 1;  // digits before the decimal point
    if (point >= n) return sign + digits + std::string(point - n, '0') + ".0";
    if (point <= 0) return sign + "0." + std::string(-point, '0') + digits;
    return sign + digits.substr(0, point) + "." + digits.substr(point);
  }
  std::string out = sign + digits.substr(0, 1);
  if (n > 1) out += "." + digits.substr(1);
  out += fmt::format("e{}{:02d}", exponent < 0 ? '-' : '+', std::abs(exponent));
  return out;
}

namespace {

void append_string_repr(std::string& out, const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  out.push_back(quote);
  for (size_t pos = 0; pos < s.size();) {
    const size_t n = text::codepoint_size(s, pos);
    const char32_t c = text::decode_at(s, pos);
    if (c == static_cast<char32_t>(quote) || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (text::is_printable(c)) {
      out.append(s, pos, n);
    } else if (c < 0x100) {
      out += fmt::format("\\x{:02x}", static_cast<uint32_t>(c));
    } else if (c < 0x10000) {
      out += fmt::format("\\u{:04x}", static_cast<uint32_t>(c));
    } else {
      out += fmt::format("\\U{:08x}", static_cast<uint32_t>(c));
    }
    pos += n;
  }
  out.push_back(quote);
}

void append_repr(std::string& out, const Value& v);

void append_items(std::string& out, const ValueList& items) {
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ", ";
    append_repr(out, items[i]);
  }
}

void append_dict(std::string& out, const DictObj& d) {
  out.push_back('{');
  for (size_t i = 0; i < d.items.size(); ++i) {
    if (i > 0) out += ", ";
    append_repr(out, d.items[i].first);
    out += ": ";
    append_repr(out, d.items[i].second);
  }
  out.push_back('}');
}

void append_repr(std::string& out, const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      out += "Undefined";
      return;
    case Value::Kind::kString:
      append_string_repr(out, v.as_string());
      return;
    default:
      append_py_str(out, v);
      return;
  }
}

}  // namespace

void append_py_str(std::string& out, const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return;
    case Value::Kind::kNone:
      out += "None";
      return;
    case Value::Kind::kBool:
      out += v.as_bool() ? "True" : "False";
      return;
    case Value::Kind::kInt:
      out += std::to_string(v.as_int());
      return;
    case Value::Kind::kFloat:
      out += float_repr(v.as_double());
      return;
    case Value::Kind::kString:
      out += v.as_string();
      return;
    case Value::Kind::kList:
      out.push_back('[');
      append_items(out, v.as_list());
      out.push_back(']');
      return;
    case Value::Kind::kTuple:
      out.push_back('(');
      append_items(out, v.as_list());
      if (v.as_list().size() == 1) out.push_back(',');
      out.push_back(')');
      return;
    case Value::Kind::kDict:
      append_dict(out, v.as_dict());
      return;
    case Value::Kind::kNamespace:
      out += "<Namespace ";
      append_dict(out, v.as_namespace().attributes);
      out += ">";
      return;
    case Value::Kind::kLoop:
      out += fmt::format("<LoopContext {}/{}>", v.as_loop().index0 + 1, v.as_loop().length);
      return;
    case Value::Kind::kCallable:
      out += v.as_callable().repr();
      return;
  }
}

std::string py_str(const Value& v) {
  if (v.is_string()) return v.as_string();
  std::string out;
  append_py_str(out, v);
  return out;
}

std::string py_repr(const Value& v) {
  std::string out;
  append_repr(out, v);
  return out;
}

bool less_than(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_float() || b.is_float()) return a.as_double() < b.as_double();
    return a.as_int() < b.as_int();
  }
  if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
  if (a.kind() == b.kind() && a.is_sequence_like()) {
    const ValueList& x = a.as_list();
    const ValueList& y = b.as_list();
    for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
      if (!equals(x[i], y[i])) return less_than(x[i], y[i]);
    }
    return x.size() < y.size();
  }
  throw EvalError(fmt::format("'<' not supported between instances of '{}' and '{}'", type_name(a),
                              type_name(b)));
}

namespace {

void append_json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out.push_back('"');
  for (size_t pos = 0; pos < s.size();) {
    const size_t n = text::codepoint_size(s, pos);
    const char32_t c = text::decode_at(s, pos);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      default:
        if (c < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<uint32_t>(c));
        } else if (ensure_ascii && c >= 0x80) {
          if (c >= 0x10000) {
            const char32_t v = c - 0x10000;
            out += fmt::format("\\u{:04x}\\u{:04x}", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF));
          } else {
            out += fmt::format("\\u{:04x}", static_cast<uint32_t>(c));
          }
        } else {
          out.append(s, pos, n);
        }
    }
    pos += n;
  }
  out.push_back('"');
}

void append_json_float(std::string& out, double x) {
  if (std::isnan(x)) {
    out += "NaN";
  } else if (std::isinf(x)) {
    out += x > 0 ? "Infinity" : "-Infinity";
  } else {
    out += float_repr(x);
  }
}

std::string json_key(const Value& key) {
  switch (key.kind()) {
    case Value::Kind::kString:
      return key.as_string();
    case Value::Kind::kInt:
      return std::to_string(key.as_int());
    case Value::Kind::kBool:
      return key.as_bool() ? "true" : "false";
    case Value::Kind::kNone:
      return "null";
    case Value::Kind::kFloat: {
      std::string s;
      append_json_float(s, key.as_double());
      return s;
    }
    default:
      throw EvalError(
          fmt::format("keys must be str, int, float, bool or None, not {}", type_name(key)));
  }
}

void append_json(std::string& out, const Value& v, const JsonDumpOptions& o, int level) {
  const auto newline_indent = [&](int lvl) {
    out.push_back('\n');
    for (int i = 0; i < lvl; ++i) out += o.indent;
  };
  switch (v.kind()) {
    case Value::Kind::kNone:
      out += "null";
      return;
    case Value::Kind::kBool:
      out += v.as_bool() ? "true" : "false";
      return;
    case Value::Kind::kInt:
      out += std::to_string(v.as_int());
      return;
    case Value::Kind::kFloat:
      append_json_float(out, v.as_double());
      return;
    case Value::Kind::kString:
      append_json_string(out, v.as_string(), o.ensure_ascii);
      return;
    case Value::Kind::kList:
    case Value::Kind::kTuple: {
      const ValueList& items = v.as_list();
      if (items.empty()) {
        out += "[]";
        return;
      }
      out.push_back('[');
      if (o.indent_set) newline_indent(level + 1);
      for (size_t i = 0; i < items.size(); ++i) {
        if (i > 0) {
          out += o.item_separator;
          if (o.indent_set) newline_indent(level + 1);
        }
        append_json(out, items[i], o, level + 1);
      }
      if (o.indent_set) newline_indent(level);
      out.push_back(']');
      return;
    }
    case Value::Kind::kDict: {
      const DictObj& d = v.as_dict();
      if (d.items.empty()) {
        out += "{}";
        return;
      }
      std::vector<std::pair<std::string, const Value*>> entries;
      entries.reserve(d.items.size());
      for (const auto& [key, item] : d.items) entries.emplace_back(json_key(key), &item);
      if (o.sort_keys) {
        std::stable_sort(entries.begin(), entries.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
      }
      out.push_back('{');
      if (o.indent_set) newline_indent(level + 1);
      for (size_t i = 0; i < entries.size(); ++i) {
        if (i > 0) {
          out += o.item_separator;
          if (o.indent_set) newline_indent(level + 1);
        }
        append_json_string(out, entries[i].first, o.ensure_ascii);
        out += o.key_separator;
        append_json(out, *entries[i].second, o, level + 1);
      }
      if (o.indent_set) newline_indent(level);
      out.push_back('}');
      return;
    }
    default:
      throw EvalError(fmt::format("Object of type {} is not JSON serializable", type_name(v)));
  }
}

template <typename Json>
Value convert_json(const Json& j, int depth) {
  if (depth > Value::kMaxNestingDepth) {
    throw EvalError(
        fmt::format("JSON nested more than {} deep", static_cast<int>(Value::kMaxNestingDepth)));
  }
  switch (j.type()) {
    case nlohmann::json::value_t::null:
      return Value::none();
    case nlohmann::json::value_t::boolean:
      return Value::boolean(j.template get<bool>());
    case nlohmann::json::value_t::number_integer:
      return Value::integer(j.template get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const auto u = j.template get<uint64_t>();
      if (u > static_cast<uint64_t>(INT64_MAX)) return Value::floating(static_cast<double>(u));
      return Value::integer(static_cast<int64_t>(u));
    }
    case nlohmann::json::value_t::number_float:
      return Value::floating(j.template get<double>());
    case nlohmann::json::value_t::string:
      return Value::string(j.template get_ref<const std::string&>());
    case nlohmann::json::value_t::array: {
      ValueList items;
      items.reserve(j.size());
      for (const auto& item : j) items.push_back(convert_json(item, depth + 1));
      return Value::list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      auto d = std::make_shared<DictObj>();
      d->items.reserve(j.size());
      for (auto it = j.begin(); it != j.end(); ++it) {
        d->set(Value::string(it.key()), convert_json(it.value(), depth + 1));
      }
      return Value::dict(std::move(d));
    }
    default:
      return Value::none();  // binary and discarded values do not come from JSON text
  }
}

}  // namespace

std::string to_json(const Value& v, const JsonDumpOptions& options) {
  std::string out;
  append_json(out, v, options, 0);
  return out;
}

Value from_json(const nlohmann::json& j) {
  return convert_json(j, 0);
}
Value from_json(const nlohmann::ordered_json& j) {
  return convert_json(j, 0);
}

}  // namespace hwledger::chat
