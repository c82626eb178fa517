#include "chat/builtins.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <optional>
#include <unordered_map>

#include "chat/interpreter.h"
#include "chat/python.h"
#include "chat/text.h"

namespace hwledger::chat {

namespace {

// ---- argument binding -------------------------------------------------------------------------

// Binds a call's arguments to named parameters, Python style.
class Bound {
 public:
  Bound(std::string_view function, CallArgs& args, std::initializer_list<std::string_view> params)
      : values_(params.size()) {
    const std::vector<std::string_view> names(params);
    if (args.positional.size() > names.size()) {
      throw EvalError(fmt::format("{}() takes at most {} argument(s) ({} given)", function,
                                  names.size(), args.positional.size()));
    }
    for (size_t i = 0; i < args.positional.size(); ++i) values_[i] = args.positional[i];
    for (auto& [key, value] : args.keyword) {
      const auto it = std::find(names.begin(), names.end(), key);
      if (it == names.end()) {
        throw EvalError(fmt::format("{}() got an unexpected keyword argument '{}'", function, key));
      }
      const size_t i = static_cast<size_t>(it - names.begin());
      if (values_[i]) {
        throw EvalError(fmt::format("{}() got multiple values for argument '{}'", function, key));
      }
      values_[i] = value;
    }
  }
  bool has(size_t i) const { return values_[i].has_value(); }
  Value get(size_t i, Value fallback = Value()) const {
    return values_[i] ? *values_[i] : fallback;
  }
  Value require(size_t i, std::string_view function, std::string_view name) const {
    if (!values_[i]) throw EvalError(fmt::format("{}() missing argument '{}'", function, name));
    return *values_[i];
  }

 private:
  std::vector<std::optional<Value>> values_;
};

[[noreturn]] void fail_undefined(const Value& v) {
  throw EvalError(v.undefined_reason());
}

const std::string& need_string(const Value& v, std::string_view what) {
  if (v.is_undefined()) fail_undefined(v);
  if (!v.is_string()) {
    throw EvalError(fmt::format("{} must be a string, not '{}'", what, type_name(v)));
  }
  return v.as_string();
}

int64_t need_int(const Value& v, std::string_view what) {
  if (v.is_undefined()) fail_undefined(v);
  if (!v.is_int() && !v.is_bool()) {
    throw EvalError(fmt::format("{} must be an integer, not '{}'", what, type_name(v)));
  }
  return v.as_int();
}

std::string_view str_of(const Value& v, std::string& storage) {
  if (v.is_string()) return v.as_string();
  storage = py_str(v);
  return storage;
}

size_t py_len(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return 0;
    case Value::Kind::kString:
      return text::codepoint_count(v.as_string());
    case Value::Kind::kList:
    case Value::Kind::kTuple:
      return v.as_list().size();
    case Value::Kind::kDict:
      return v.as_dict().items.size();
    default:
      throw EvalError(fmt::format("object of type '{}' has no len()", type_name(v)));
  }
}

// Python's int(str, base): optional sign, digits with single underscores, surrounding spaces.
std::optional<int64_t> parse_int(std::string_view s, int base) {
  s = text::strip(s, true, true);
  bool negative = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.size() > 2 && s[0] == '0') {
    const char p = static_cast<char>(s[1] | 0x20);
    const int prefixed = p == 'x' ? 16 : p == 'o' ? 8 : p == 'b' ? 2 : 0;
    if (prefixed != 0 && (base == 0 || base == prefixed)) {
      base = prefixed;
      s.remove_prefix(2);
      if (!s.empty() && s[0] == '_') s.remove_prefix(1);
    }
  }
  if (base == 0) base = 10;
  if (s.empty() || s.front() == '_' || s.back() == '_') return std::nullopt;
  uint64_t value = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '_') {
      if (s[i + 1] == '_') return std::nullopt;
      continue;
    }
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') {
      d = (c | 0x20) - 'a' + 10;
    } else {
      return std::nullopt;
    }
    if (d >= base) return std::nullopt;
    if (value > (static_cast<uint64_t>(INT64_MAX) - d) / base) {
      throw EvalError("integer overflow (values beyond 64 bits are not supported)");
    }
    value = value * base + d;
  }
  return negative ? -static_cast<int64_t>(value) : static_cast<int64_t>(value);
}

// Python's float(str).
std::optional<double> parse_float(std::string_view s) {
  s = text::strip(s, true, true);
  std::string cleaned;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '_') {
      if (i == 0 || i + 1 == s.size() || !std::isdigit(static_cast<unsigned char>(s[i - 1])) ||
          !std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
        return std::nullopt;
      }
      continue;
    }
    cleaned.push_back(s[i]);
  }
  if (cleaned.empty()) return std::nullopt;
  std::string lower = text::to_lower(cleaned);
  std::string_view body = lower;
  if (!body.empty() && (body[0] == '+' || body[0] == '-')) body.remove_prefix(1);
  if (body == "inf" || body == "infinity" || body == "nan") {
    const double x = body == "nan" ? NAN : INFINITY;
    return lower[0] == '-' ? -x : x;
  }
  if (body.find_first_not_of("0123456789.e+-") != std::string_view::npos) return std::nullopt;
  char* end = nullptr;
  const double x = std::strtod(cleaned.c_str(), &end);
  if (end != cleaned.c_str() + cleaned.size()) return std::nullopt;
  return x;
}

// Python's round(x, ndigits) for floats: correctly rounded, ties to even.
double round_float(double x, int64_t ndigits) {
  if (!std::isfinite(x) || ndigits > 320) return x;
  if (ndigits >= 0) {
    char buf[512];
    std::snprintf(buf, sizeof(buf), "%.*f", static_cast<int>(ndigits), x);
    return std::strtod(buf, nullptr);
  }
  if (ndigits < -320) return std::copysign(0.0, x);
  const double scale = std::pow(10.0, static_cast<double>(-ndigits));
  return std::nearbyint(x / scale) * scale;
}

// "a.b.0" as Jinja's make_attrgetter reads it: attribute names and integer indexes.
Value get_path(Interpreter& in, const Value& item, const Value& path) {
  if (path.is_int()) return in.get_item(item, path);
  std::string storage;
  const std::string_view dotted = str_of(path, storage);
  Value v = item;
  size_t start = 0;
  while (true) {
    const size_t dot = dotted.find('.', start);
    const std::string_view part =
        dotted.substr(start, dot == std::string_view::npos ? dotted.npos : dot - start);
    const auto index = parse_int(part, 10);
    if (index && !part.empty() && std::isdigit(static_cast<unsigned char>(part[0]))) {
      v = in.get_item(v, Value::integer(*index));
    } else {
      v = in.get_item(v, Value::string(std::string(part)));
    }
    if (dot == std::string_view::npos) return v;
    start = dot + 1;
  }
}

// The key a sort, min, max or unique compares: case-folded strings unless case_sensitive.
Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::string(text::to_lower(v.as_string()));
  return v;
}

std::vector<std::string> split_lines(std::string_view s, bool keep_ends) {
  std::vector<std::string> lines;
  size_t start = 0;
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t n = text::codepoint_size(s, pos);
    const char32_t c = text::decode_at(s, pos);
    const bool is_break = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C ||
                          c == 0x1D || c == 0x1E || c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!is_break) {
      pos += n;
      continue;
    }
    size_t end = pos + n;
    if (c == '\r' && end < s.size() && s[end] == '\n') ++end;
    lines.emplace_back(s.substr(start, (keep_ends ? end : pos) - start));
    start = pos = end;
  }
  if (start < s.size()) lines.emplace_back(s.substr(start));
  return lines;
}

// Python's str.split / str.rsplit.
std::vector<std::string> split(std::string_view s, const Value& separator, int64_t max_split,
                               bool from_right) {
  std::vector<std::string> parts;
  if (max_split < 0) max_split = INT64_MAX;
  if (separator.is_none() || separator.is_undefined()) {
    // Runs of whitespace separate; leading and trailing whitespace gives no empty parts.
    std::vector<std::pair<size_t, size_t>> words;  // [begin, end) of each word
    for (size_t pos = 0; pos < s.size();) {
      while (pos < s.size() && text::is_space(text::decode_at(s, pos))) {
        pos += text::codepoint_size(s, pos);
      }
      if (pos >= s.size()) break;
      const size_t begin = pos;
      while (pos < s.size() && !text::is_space(text::decode_at(s, pos))) {
        pos += text::codepoint_size(s, pos);
      }
      words.emplace_back(begin, pos);
    }
    if (static_cast<int64_t>(words.size()) - 1 > max_split) {
      const size_t keep = static_cast<size_t>(max_split);
      if (!from_right) {
        for (size_t i = 0; i < keep; ++i)
          parts.emplace_back(s.substr(words[i].first, words[i].second - words[i].first));
        const size_t rest = words[keep].first;
        parts.emplace_back(text::strip(s.substr(rest), false, true));
      } else {
        const size_t first_kept = words.size() - keep;
        parts.emplace_back(text::strip(s.substr(0, words[first_kept - 1].second), true, false));
        for (size_t i = first_kept; i < words.size(); ++i) {
          parts.emplace_back(s.substr(words[i].first, words[i].second - words[i].first));
        }
      }
      return parts;
    }
    for (const auto& [b, e] : words) parts.emplace_back(s.substr(b, e - b));
    return parts;
  }
  const std::string& sep = need_string(separator, "separator");
  if (sep.empty()) throw EvalError("empty separator");
  if (!from_right) {
    size_t start = 0;
    for (int64_t n = 0; n < max_split; ++n) {
      const size_t hit = s.find(sep, start);
      if (hit == std::string_view::npos) break;
      parts.emplace_back(s.substr(start, hit - start));
      start = hit + sep.size();
    }
    parts.emplace_back(s.substr(start));
    return parts;
  }
  size_t end = s.size();
  for (int64_t n = 0; n < max_split && end >= sep.size(); ++n) {
    const size_t hit = s.rfind(sep, end - sep.size());
    if (hit == std::string_view::npos) break;
    parts.emplace_back(s.substr(hit + sep.size(), end - hit - sep.size()));
    end = hit;
  }
  parts.emplace_back(s.substr(0, end));
  std::reverse(parts.begin(), parts.end());
  return parts;
}

Value string_list(Interpreter& in, const std::vector<std::string>& parts) {
  ValueList items;
  items.reserve(parts.size());
  size_t bytes = 0;
  for (const std::string& p : parts) {
    bytes += p.size();
    items.push_back(Value::string(p));
  }
  in.charge_bytes(bytes);
  return in.new_list(std::move(items));
}

// Python's str.replace, counting code points for the empty pattern.
std::string replace(std::string_view s, std::string_view old, std::string_view replacement,
                    int64_t count, Interpreter& in) {
  if (count < 0) count = INT64_MAX;
  std::string out;
  if (old.empty()) {
    int64_t done = 0;
    size_t pos = 0;
    while (pos <= s.size()) {
      if (done < count) {
        out.append(replacement);
        ++done;
      }
      if (pos == s.size()) break;
      const size_t n = text::codepoint_size(s, pos);
      out.append(s.substr(pos, n));
      pos += n;
      in.charge_bytes(replacement.size() + n);
    }
    return out;
  }
  size_t start = 0;
  for (int64_t n = 0; n < count; ++n) {
    const size_t hit = s.find(old, start);
    if (hit == std::string_view::npos) break;
    out.append(s.substr(start, hit - start));
    out.append(replacement);
    start = hit + old.size();
    in.charge_bytes(replacement.size());
  }
  out.append(s.substr(start));
  return out;
}

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (const char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

// ---- filters --------------------------------------------------------------------------------

Value f_abs(Interpreter&, const Value& v, CallArgs& args) {
  Bound("abs", args, {});
  if (v.is_int() || v.is_bool()) {
    if (v.as_int() == INT64_MIN) throw EvalError("integer overflow");
    return Value::integer(std::llabs(v.as_int()));
  }
  if (v.is_float()) return Value::floating(std::fabs(v.as_double()));
  if (v.is_undefined()) fail_undefined(v);
  throw EvalError(fmt::format("bad operand type for abs(): '{}'", type_name(v)));
}

// obj|attr('name'): the attribute only, never an item (Jinja's do_attr).
Value f_attr(Interpreter& in, const Value& v, CallArgs& args) {
  Bound a("attr", args, {"name"});
  const std::string& name = need_string(a.require(0, "attr", "name"), "attribute name");
  if (v.is_namespace() || v.is_loop() || v.is_undefined()) return in.get_attribute(v, name);
  if (std::optional<Value> method = find_method(v, name)) return *method;
  return Value::undefined(fmt::format("'{} object' has no attribute '{}'", type_name(v), name));
}

Value f_capitalize(Interpreter& in, const Value& v, CallArgs& args) {
  Bound("capitalize", args, {});
  std::string storage;
  return in.new_string(text::capitalize(str_of(v, storage)));
}

Value f_length(Interpreter&, const Value& v, CallArgs& args) {
  Bound("length", args, {});
  return Value::integer(static_cast<int64_t>(py_len(v)));
}

Value f_default(Interpreter&, const Value& v, CallArgs& args) {
  Bound a("default", args, {"default_value", "boolean"});
  const bool boolean = truthy(a.get(1, Value::boolean(false)));
  if (v.is_undefined() || (boolean && !truthy(v))) return a.get(0, Value::string(""));
  return v;
}

Value f_dictsort(Interpreter& in, const Value& v, CallArgs& args) {
  Bound a("dictsort", args, {"case_sensitive", "by", "reverse"});
  if (!v.is_dict()) throw EvalError("You can only sort by either 'key' or 'value' of a dict");
  const bool case_sensitive = truthy(a.get(0, Value::boolean(false)));
  const Value by = a.get(1, Value::string("key"));
  const bool reverse = truthy(a.get(2, Value::boolean(false)));
  int position;
  if (by.is_string() && by.as_string() == "key") {
    position = 0;
  } else if (by.is_string() && by.as_string() == "value") {
    position = 1;
  } else {
    throw EvalError("You can only sort by either 'key' or 'value'");
  }
  ValueList pairs;
  for (const auto& [k, item] : v.as_dict().items) pairs.push_back(Value::tuple({k, item}));
  in.charge_steps(pairs.size() * 8);
  std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& x, const Value& y) {
    const Value kx = sort_key(x.as_list()[position], case_sensitive);
    const Value ky = sort_key(y.as_list()[position], case_sensitive);
    return reverse ? less_than(ky, kx) : less_than(kx, ky);
  });
  return in.new_list(std::move(pairs));
}

Value f_escape(Interpreter& in, const Value& v, CallArgs& args) {
  Bound("escape", args, {});
  std::string storage;
  return in.new_string(html_escape(str_of(v, storage)));
}

Value f_first(Interpreter& in, const Value& v, CallArgs& args) {
  Bound("first", args, {});
  if (v.is_sequence_like()) {
    if (!v.as_list().empty()) return v.as_list().front();
  } else {
    const ValueList items = in.iterate(v);
    if (!items.empty()) return items.front();
  }
  return Value::undefined("No first item, sequence was empty.");
}

Value f_last(Interpreter& in, const Value& v, CallArgs& args) {
  Bound("last", args, {});
  if (v.is_sequence_like()) {
    if (!v.as_list().empty()) return v.as_list().back();
  } else {
    const ValueList items = in.iterate(v);
    if (!items.empty()) return items.back();
  }
  return Value::undefined("No last item, sequence was empty.");
}

Value f_float(Interpreter&, const Value& v, CallArgs& args) {
  Bound a("float", args, {"default"});
  if (v.is_undefined()) fail_undefined(v);  // float(Undefined) fails in Jinja
  const Value fallback = a.get(0, Value::floating(0.0));
  if (v.is_number()) return Value::floating(v.as_double());
  if (v.is_string()) {
    if (const auto x = parse_float(v.as_string())) return Value::floating(*x);
  }
  return fallback;
}

Value f_int(Interpreter&, const Value& v, CallArgs& args) {
  Bound a("int", args, {"default", "base"});
  const Value fallback = a.get(0, Value::integer(0));
  const int64_t base = need_int(a.get(1, Value::integer(10)), "base");
  if (base != 0 && (base < 2 || base > 36))
    throw EvalError("int() base must be >= 2 and <= 36, or 0");
  const auto from_double = [&](double x) -> Value {
    if (std::isnan(x)) return fallback;
    if (std::isinf(x)) throw EvalError("cannot convert float infinity to integer");
    if (std::fabs(x) >= 9.2e18)
      throw EvalError("integer overflow (values beyond 64 bits are not supported)");
    return Value::integer(static_cast<int64_t>(x));
  };
  if (v.is_undefined()) fail_undefined(v);  // int(Undefined) fails in Jinja
  if (v.is_int() || v.is_bool()) return Value::integer(v.as_int());
  if (v.is_float()) return from_double(v.as_double());
  if (v.is_string()) {
    if (const auto i = parse_int(v.as_string(), static_cast<int>(base))) return Value::integer(*i);
    if (const auto x = parse_float(v.as_string())) return from_double(*x);
  }
  return fallback;
}

Value f_items(Interpreter& in, const Value& v, CallArgs& args) {
  Bound("items", args, {});
  if (v.is_undefined()) return in.new_list({});
  if (!v.is_dict()) throw EvalError("Can only get item pairs from a mapping.");
  ValueList pairs;
  pairs.reserve(v.as_dict().items.size());
  for (const auto& [k, item] : v.as_dict().items) pairs.push_back(Value::tuple({k, item}));
  return in.new_list(std::move(pairs));
}

Value f_join(Interpreter& in, const Value& v, CallArgs& args) {
  Bound a("join", args, {"d", "attribute"});
  std::string storage;
  const Value separator_value = a.get(0, Value::string(""));
  const std::string_view separator = str_of(separator_value, storage);
  const Value attribute = a.get(1, Value::none());
  std::string out;
  bool first = true;
  for (const Value& item : in.iterate(v)) {
    if (!first) out += separator;
    first = false;
    if (attribute.is_none()) {
      append_py_str(out, item);
    } else {
      append_py_str(out, get_path(in, item, attribute));
    }
    if (out.size() > (size_t{1} << 31)) throw EvalError("joined string too large");
  }
  return in.new_string(std::move(out));
}

Value f_list(Interpreter& in, const Value& v, CallArgs& args) {
  Bound("list", args, {});
  if (v.is_list()) return v;
  return in.new_list(in.iterate(v));
}

Value f_lower(Interpreter& in, const Value& v, CallArgs& args) {
  Bound("lower", args, {});
  std::string storage;
  return in.new_string(text::to_lower(str_of(v, storage)));
}

Value f_upper(Interpreter& in, const Value& v, CallArgs& args) {
  Bound("upper", args, {});
  std::string storage;
  return in.new_string(text::to_upper(str_of(v, storage)));
}

Value f_title(Interpreter& in, const Value& v, CallArgs& args) {
  Bound("title", args, {});
  std::string storage;
  return in.new_string(text::title_filter(str_of(v, storage)));
}

Value f_trim(Interpreter& in, const Value& v, CallArgs& args) {
  Bound a("trim", args, {"chars"});
  std::string storage;
  const std::string_view s = str_of(v, storage);
  const Value chars = a.get(0, Value::none());
  if (chars.is_none()) return in.new_string(std::string(text::strip(s, true, true)));
  return in.new_string(
      std::string(text::strip_chars(s, need_string(chars, "trim() chars"), true, true)));
}

// map('filter', args...) or map(attribute='x', default=...)
Value f_map(Interpreter& in, const Value& v, CallArgs& args) {
  // Jinja's map and select family yield nothing for a falsy operand (None, 0, false).
  const ValueList items = truthy(v) ? in.iterate(v) : ValueList{};
  ValueList out;
  out.reserve(items.size());
  if (args.positional.empty()) {
    Bound a("map", args, {"attribute", "default"});
    const Value attribute = a.require(0, "map", "attribute");
    for (const Value& item : items) {
      Value x = get_path(in, item, attribute);
      if (x.is_undefined() && a.has(1)) x = a.get(1);
      out.push_back(std::move(x));
    }
    return in.new_list(std::move(out));
  }
  const std::string name = need_string(args.positional[0], "map() filter name");
  for (const Value& item : items) {
    CallArgs rest;
    rest.positional.assign(args.positional.begin() + 1, args.positional.end());
    rest.keyword = args.keyword;
    out.push_back(in.apply_filter(name, item, std::move(rest)));
  }
  return in.new_list(std::move(out));
}

// select/reject('test', args...), selectattr/rejectattr('attr', 'test', args...)
Value select_impl(Interpreter& in, const Value& v, CallArgs& args, bool by_attribute, bool keep) {
  const ValueList items = truthy(v) ? in.iterate(v) : ValueList{};
  size_t next_arg = 0;
  Value attribute;
  if (by_attribute) {
    if (args.positional.empty()) throw EvalError("selectattr() missing the attribute name");
    attribute = args.positional[next_arg++];
  }
  std::string test;
  if (next_arg < args.positional.size())
    test = need_string(args.positional[next_arg++], "test name");
  ValueList out;
  for (const Value& item : items) {
    const Value subject = by_attribute ? get_path(in, item, attribute) : item;
    bool passed;
    if (test.empty()) {
      passed = truthy(subject);
    } else {
      CallArgs rest;
      rest.positional.assign(args.positional.begin() + static_cast<long>(next_arg),
                             args.positional.end());
      rest.keyword = args.keyword;
      passed = in.apply_test(test, subject, std::move(rest));
    }
    if (passed == keep) out.push_back(item);
  }
  return in.new_list(std::move(out));
}
Value f_select(Interpreter& in, const Value& v, CallArgs& a) {
  return select_impl(in, v, a, false, true);
}
Value f_reject(Interpreter& in, const Value& v, CallArgs& a) {
  return select_impl(in, v, a, false, false);
}
Value f_selectattr(Interpreter& in, const Value& v, CallArgs& a) {
  return select_impl(in, v, a, true, true);
}
Value f_rejectattr(Interpreter& in, const Value& v, CallArgs& a) {
  return select_impl(in, v, a, true, false);
}

Value min_max(Interpreter& in, const Value& v, CallArgs& args, bool want_max) {
  Bound a(want_max ? "max" : "min", args, {"case_sensitive", "attribute"});
  const bool case_sensitive = truthy(a.get(0, Value::boolean(false)));
  const Value attribute = a.get(1, Value::none());
  const ValueList items = in.iterate(v);
  if (items.empty())
    return Value::undefined(fmt::format("No aggregated item, sequence was empty."));
  const auto key = [&](const Value& x) {
    return sort_key(attribute.is_none() ? x : get_path(in, x, attribute), case_sensitive);
  };
  size_t best = 0;
  Value best_key = key(items[0]);
  for (size_t i = 1; i < items.size(); ++i) {
    Value k = key(items[i]);
    if (want_max ? less_than(best_key, k) : less_than(k, best_key)) {
      best = i;
      best_key = std::move(k);
    }
  }
  return items[best];
}
Value f_max(Interpreter& in, const Value& v, CallArgs& a) {
  return min_max(in, v, a, true);
}
Value f_min(Interpreter& in, const Value& v, CallArgs& a) {
  return min_max(in, v, a, false);
}

Value f_replace(Interpreter& in, const Value& v, CallArgs& args) {
  Bound a("replace", args, {"old", "new", "count"});
  std::string s1, s2, s3;
  const Value old_v = a.require(0, "replace", "old");
  const Value new_v = a.require(1, "replace", "new");
  const Value count = a.get(2, Value::none());
  return in.new_string(replace(str_of(v, s1), str_of(old_v, s2), str_of(new_v, s3),
                               count.is_none() ? -1 : need_int(count, "count"), in));
}

Value f_reverse(Interpreter& in, const Value& v, CallArgs& args) {
  Bound("reverse", args, {});
  if (v.is_string()) {
    const std::string& s = v.as_string();
    const std::vector<size_t> offsets = text::codepoint_offsets(s);
    std::string out;
    out.reserve(s.size());
    for (size_t i = offsets.size() - 1; i > 0; --i)
      out.append(s, offsets[i - 1], offsets[i] - offsets[i - 1]);
    return in.new_string(std::move(out));
  }
  ValueList items = in.iterate(v);
  std::reverse(items.begin(), items.end());
  return in.new_list(std::move(items));
}

Value f_round(Interpreter&, const Value& v, CallArgs& args) {
  Bound a("round", args, {"precision", "method"});
  const int64_t precision = need_int(a.get(0, Value::integer(0)), "precision");
  const Value method_v = a.get(1, Value::string("common"));
  const std::string& method = need_string(method_v, "method");
  if (method != "common" && method != "ceil" && method != "floor") {
    throw EvalError("method must be common, ceil or floor");
  }
  if (v.is_undefined()) fail_undefined(v);
  if (!v.is_number()) {
    throw EvalError(fmt::format("type {} doesn't define __round__ method", type_name(v)));
  }
  if (method == "common") {
    if (!v.is_float()) {
      if (precision >= 0) return Value::integer(v.as_int());
      return Value::integer(
          static_cast<int64_t>(round_float(static_cast<double>(v.as_int()), precision)));
    }
    return Value::floating(round_float(v.as_double(), precision));
  }
  const double scale = std::pow(10.0, static_cast<double>(precision));
  const double x = v.as_double() * scale;
  return Value::floating((method == "ceil" ? std::ceil(x) : std::floor(x)) / scale);
}

Value f_safe(Interpreter& in, const Value& v, CallArgs& args) {
  Bound("safe", args, {});
  if (v.is_string()) return v;
  return in.new_string(py_str(v));
}

Value f_sort(Interpreter& in, const Value& v, CallArgs& args) {
  Bound a("sort", args, {"reverse", "case_sensitive", "attribute"});
  const bool reverse = truthy(a.get(0, Value::boolean(false)));
  const bool case_sensitive = truthy(a.get(1, Value::boolean(false)));
  const Value attribute = a.get(2, Value::none());
  ValueList items = in.iterate(v);
  std::vector<std::pair<Value, size_t>> keyed;
  keyed.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    keyed.emplace_back(sort_key(attribute.is_none() ? items[i] : get_path(in, items[i], attribute),
                                case_sensitive),
                       i);
  }
  in.charge_steps(items.size() * 8);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    return reverse ? less_than(y.first, x.first) : less_than(x.first, y.first);
  });
  ValueList out;
  out.reserve(items.size());
  for (const auto& [k, i] : keyed) out.push_back(items[i]);
  return in.new_list(std::move(out));
}

Value f_string(Interpreter& in, const Value& v, CallArgs& args) {
  Bound("string", args, {});
  if (v.is_string()) return v;
  return in.new_string(py_str(v));
}

Value f_sum(Interpreter& in, const Value& v, CallArgs& args) {
  Bound a("sum", args, {"attribute", "start"});
  const Value attribute = a.get(0, Value::none());
  Value total = a.get(1, Value::integer(0));
  for (const Value& item : in.iterate(v)) {
    total = binary_op(in, BinaryOp::kAdd, total,
                      attribute.is_none() ? item : get_path(in, item, attribute));
  }
  return total;
}

// transformers' tojson: json.dumps(x, ensure_ascii=False, indent=None, separators=None,
// sort_keys=False); no HTML escaping, keys in insertion order.
Value f_tojson(Interpreter& in, const Value& v, CallArgs& args) {
  Bound a("tojson", args, {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonDumpOptions options;
  options.ensure_ascii = truthy(a.get(0, Value::boolean(false)));
  const Value indent = a.get(1, Value::none());
  if (indent.is_int() || indent.is_bool()) {
    options.indent_set = true;
    options.indent =
        std::string(static_cast<size_t>(std::clamp<int64_t>(indent.as_int(), 0, 1 << 10)), ' ');
  } else if (indent.is_string()) {
    options.indent_set = true;
    options.indent = indent.as_string();
  } else if (!indent.is_none()) {
    throw EvalError(fmt::format("indent must be an int or a string, not '{}'", type_name(indent)));
  }
  if (options.indent_set) options.item_separator = ",";
  const Value separators = a.get(2, Value::none());
  if (!separators.is_none()) {
    if (!separators.is_sequence_like() || separators.as_list().size() != 2) {
      throw EvalError("separators must be a pair of strings");
    }
    options.item_separator = need_string(separators.as_list()[0], "separator");
    options.key_separator = need_string(separators.as_list()[1], "separator");
  }
  options.sort_keys = truthy(a.get(3, Value::boolean(false)));
  return in.new_string(to_json(v, options));
}

Value f_unique(Interpreter& in, const Value& v, CallArgs& args) {
  Bound a("unique", args, {"case_sensitive", "attribute"});
  const bool case_sensitive = truthy(a.get(0, Value::boolean(false)));
  const Value attribute = a.get(1, Value::none());
  ValueList seen;
  ValueList out;
  for (const Value& item : in.iterate(v)) {
    Value key =
        sort_key(attribute.is_none() ? item : get_path(in, item, attribute), case_sensitive);
    in.charge_steps(seen.size());
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, key); }))
      continue;
    seen.push_back(std::move(key));
    out.push_back(item);
  }
  return in.new_list(std::move(out));
}

Value f_indent(Interpreter& in, const Value& v, CallArgs& args) {
  Bound a("indent", args, {"width", "first", "blank"});
  const Value width = a.get(0, Value::integer(4));
  std::string indentation;
  if (width.is_string()) {
    indentation = width.as_string();
  } else {
    indentation = std::string(
        static_cast<size_t>(std::clamp<int64_t>(need_int(width, "width"), 0, 1 << 10)), ' ');
  }
  const bool first = truthy(a.get(1, Value::boolean(false)));
  const bool blank = truthy(a.get(2, Value::boolean(false)));
  if (v.is_undefined()) fail_undefined(v);  // Undefined + "\n" fails in Jinja
  std::string storage;
  std::string s(str_of(v, storage));
  s += "\n";
  const std::vector<std::string> lines = split_lines(s, false);
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) {
      out += "\n";
      if (blank || !lines[i].empty()) out += indentation;
    }
    out += lines[i];
    in.charge_bytes(indentation.size() + lines[i].size());
  }
  if (first) out = indentation + out;
  return in.new_string(std::move(out));
}

Value f_format(Interpreter& in, const Value& v, CallArgs& args) {
  std::string storage;
  const std::string format(str_of(v, storage));
  if (!args.keyword.empty()) {
    if (!args.positional.empty()) {
      throw EvalError("can't handle positional and keyword arguments at the same time");
    }
    auto d = std::make_shared<DictObj>();
    for (auto& [k, x] : args.keyword) d->set(Value::string(k), x);
    return percent_format(in, format, Value::dict(std::move(d)));
  }
  return percent_format(in, format, Value::tuple(args.positional));
}

Value f_center(Interpreter& in, const Value& v, CallArgs& args) {
  Bound a("center", args, {"width"});
  const int64_t width = std::min<int64_t>(need_int(a.get(0, Value::integer(80)), "width"), 1 << 20);
  std::string storage;
  const std::string_view s = str_of(v, storage);
  const int64_t length = static_cast<int64_t>(text::codepoint_count(s));
  if (width <= length) return in.new_string(std::string(s));
  // CPython's pad(): the extra space of an odd margin goes left when the width is odd.
  const int64_t margin = width - length;
  const int64_t left = margin / 2 + (margin & width & 1);
  return in.new_string(std::string(static_cast<size_t>(left), ' ') + std::string(s) +
                       std::string(static_cast<size_t>(margin - left), ' '));
}

Value f_wordcount(Interpreter&, const Value& v, CallArgs& args) {
  Bound("wordcount", args, {});
  std::string storage;
  const std::string_view s = str_of(v, storage);
  int64_t words = 0;
  bool in_word = false;
  for (size_t pos = 0; pos < s.size(); pos += text::codepoint_size(s, pos)) {
    const char32_t c = text::decode_at(s, pos);
    const bool word_char = text::is_alnum(c) || c == '_';
    if (word_char && !in_word) ++words;
    in_word = word_char;
  }
  return Value::integer(words);
}

// ---- tests ------------------------------------------------------------------------------------

bool t_defined(Interpreter&, const Value& v, CallArgs& a) {
  Bound("defined", a, {});
  return !v.is_undefined();
}
bool t_undefined(Interpreter&, const Value& v, CallArgs& a) {
  Bound("undefined", a, {});
  return v.is_undefined();
}
bool t_none(Interpreter&, const Value& v, CallArgs& a) {
  Bound("none", a, {});
  return v.is_none();
}
bool t_boolean(Interpreter&, const Value& v, CallArgs& a) {
  Bound("boolean", a, {});
  return v.is_bool();
}
bool t_true(Interpreter&, const Value& v, CallArgs& a) {
  Bound("true", a, {});
  return v.is_bool() && v.as_bool();
}
bool t_false(Interpreter&, const Value& v, CallArgs& a) {
  Bound("false", a, {});
  return v.is_bool() && !v.as_bool();
}
bool t_string(Interpreter&, const Value& v, CallArgs& a) {
  Bound("string", a, {});
  return v.is_string();
}
bool t_number(Interpreter&, const Value& v, CallArgs& a) {
  Bound("number", a, {});
  return v.is_number();
}
bool t_integer(Interpreter&, const Value& v, CallArgs& a) {
  Bound("integer", a, {});
  return v.is_int();
}
bool t_float(Interpreter&, const Value& v, CallArgs& a) {
  Bound("float", a, {});
  return v.is_float();
}
bool t_mapping(Interpreter&, const Value& v, CallArgs& a) {
  Bound("mapping", a, {});
  return v.is_dict();
}
bool t_callable(Interpreter&, const Value& v, CallArgs& a) {
  Bound("callable", a, {});
  return v.is_callable() || v.is_undefined();  // Jinja's Undefined defines __call__
}
bool t_escaped(Interpreter&, const Value&, CallArgs& a) {
  Bound("escaped", a, {});
  return false;
}
bool t_iterable(Interpreter&, const Value& v, CallArgs& a) {
  Bound("iterable", a, {});
  return v.is_undefined() || v.is_string() || v.is_sequence_like() || v.is_dict();
}
bool t_sequence(Interpreter&, const Value& v, CallArgs& a) {
  Bound("sequence", a, {});
  return v.is_undefined() || v.is_string() || v.is_sequence_like() || v.is_dict();
}
bool t_lower(Interpreter&, const Value& v, CallArgs& a) {
  Bound("lower", a, {});
  std::string storage;
  const std::string_view s = str_of(v, storage);
  bool cased = false;
  for (size_t pos = 0; pos < s.size(); pos += text::codepoint_size(s, pos)) {
    const std::string one(s.substr(pos, text::codepoint_size(s, pos)));
    if (text::to_upper(one) != one) cased = true;
    if (text::to_lower(one) != one) return false;
  }
  return cased;
}
bool t_upper(Interpreter&, const Value& v, CallArgs& a) {
  Bound("upper", a, {});
  std::string storage;
  const std::string_view s = str_of(v, storage);
  bool cased = false;
  for (size_t pos = 0; pos < s.size(); pos += text::codepoint_size(s, pos)) {
    const std::string one(s.substr(pos, text::codepoint_size(s, pos)));
    if (text::to_lower(one) != one) cased = true;
    if (text::to_upper(one) != one) return false;
  }
  return cased;
}

Value modulo(const Value& v, const Value& n) {
  if (v.is_undefined()) fail_undefined(v);
  if (!v.is_number() || !n.is_number()) {
    throw EvalError(fmt::format("unsupported operand type(s) for %: '{}' and '{}'", type_name(v),
                                type_name(n)));
  }
  if (v.is_float() || n.is_float()) {
    if (n.as_double() == 0.0) throw EvalError("float modulo");
    return Value::floating(std::fmod(v.as_double(), n.as_double()));
  }
  if (n.as_int() == 0) throw EvalError("integer division or modulo by zero");
  if (n.as_int() == -1) return Value::integer(0);
  return Value::integer(v.as_int() % n.as_int());
}
bool t_even(Interpreter&, const Value& v, CallArgs& a) {
  Bound("even", a, {});
  return !truthy(modulo(v, Value::integer(2)));
}
bool t_odd(Interpreter&, const Value& v, CallArgs& a) {
  Bound("odd", a, {});
  return truthy(modulo(v, Value::integer(2)));
}
bool t_divisibleby(Interpreter&, const Value& v, CallArgs& args) {
  Bound a("divisibleby", args, {"num"});
  return !truthy(modulo(v, a.require(0, "divisibleby", "num")));
}

bool compare_test(std::string_view name, const Value& v, CallArgs& args, int op) {
  Bound a(name, args, {"other"});
  const Value other = a.require(0, name, "other");
  switch (op) {
    case 0:
      return equals(v, other);
    case 1:
      return !equals(v, other);
    default:
      break;
  }
  if (v.is_undefined()) fail_undefined(v);
  if (other.is_undefined()) fail_undefined(other);
  switch (op) {
    case 2:
      return less_than(v, other);
    case 3:
      return less_than(v, other) || equals(v, other);
    case 4:
      return less_than(other, v);
    default:
      return less_than(other, v) || equals(v, other);
  }
}
bool t_eq(Interpreter&, const Value& v, CallArgs& a) {
  return compare_test("eq", v, a, 0);
}
bool t_ne(Interpreter&, const Value& v, CallArgs& a) {
  return compare_test("ne", v, a, 1);
}
bool t_lt(Interpreter&, const Value& v, CallArgs& a) {
  return compare_test("lt", v, a, 2);
}
bool t_le(Interpreter&, const Value& v, CallArgs& a) {
  return compare_test("le", v, a, 3);
}
bool t_gt(Interpreter&, const Value& v, CallArgs& a) {
  return compare_test("gt", v, a, 4);
}
bool t_ge(Interpreter&, const Value& v, CallArgs& a) {
  return compare_test("ge", v, a, 5);
}
bool t_sameas(Interpreter&, const Value& v, CallArgs& args) {
  Bound a("sameas", args, {"other"});
  const Value other = a.require(0, "sameas", "other");
  if (v.kind() != other.kind()) return false;
  // CPython caches None, booleans and small ints, so those are "the same object".
  if (v.is_none() || v.is_bool() || v.is_undefined()) return equals(v, other);
  if (v.is_int()) return v.as_int() >= -5 && v.as_int() <= 256 && equals(v, other);
  if (v.is_namespace()) return v.namespace_ptr() == other.namespace_ptr();
  return false;  // object identity is not tracked for other values
}
bool t_in(Interpreter& in, const Value& v, CallArgs& args) {
  Bound a("in", args, {"seq"});
  const Value seq = a.require(0, "in", "seq");
  if (seq.is_string())
    return v.is_string() && seq.as_string().find(v.as_string()) != std::string::npos;
  if (seq.is_dict()) return seq.as_dict().find(v) != nullptr;
  for (const Value& item : in.iterate(seq)) {
    if (equals(item, v)) return true;
  }
  return false;
}
bool t_filter(Interpreter&, const Value& v, CallArgs& a) {
  Bound("filter", a, {});
  return v.is_string() && find_filter(v.as_string()) != nullptr;
}
bool t_test(Interpreter&, const Value& v, CallArgs& a) {
  Bound("test", a, {});
  return v.is_string() && find_test(v.as_string()) != nullptr;
}

// ---- callables --------------------------------------------------------------------------------

using NativeFn = Value (*)(Interpreter&, CallArgs&);
using MethodFn = Value (*)(Interpreter&, const Value& self, CallArgs&);

class NativeFunction : public CallableObj {
 public:
  NativeFunction(std::string name, NativeFn fn) : name_(std::move(name)), fn_(fn) {}
  Value call(Interpreter& in, CallArgs args) const override { return fn_(in, args); }
  std::string repr() const override { return fmt::format("<function {}>", name_); }

 private:
  std::string name_;
  NativeFn fn_;
};

class BoundMethod : public CallableObj {
 public:
  BoundMethod(Value self, std::string_view name, MethodFn fn)
      : self_(std::move(self)), name_(name), fn_(fn) {}
  Value call(Interpreter& in, CallArgs args) const override { return fn_(in, self_, args); }
  std::string repr() const override {
    return fmt::format("<built-in method {} of {} object>", name_, type_name(self_));
  }

 private:
  Value self_;
  std::string name_;
  MethodFn fn_;
};

Value g_range(Interpreter& in, CallArgs& args) {
  if (!args.keyword.empty()) throw EvalError("range() takes no keyword arguments");
  const ValueList& p = args.positional;
  if (p.empty() || p.size() > 3) throw EvalError("range expected 1 to 3 arguments");
  int64_t start = 0, stop, step = 1;
  if (p.size() == 1) {
    stop = need_int(p[0], "range() argument");
  } else {
    start = need_int(p[0], "range() argument");
    stop = need_int(p[1], "range() argument");
    if (p.size() == 3) step = need_int(p[2], "range() argument");
  }
  if (step == 0) throw EvalError("range() arg 3 must not be zero");
  __int128 count = 0;
  if (step > 0 && start < stop) count = ((__int128)stop - start - 1) / step + 1;
  if (step < 0 && stop < start) count = ((__int128)start - stop - 1) / (-(__int128)step) + 1;
  if (count > (1 << 24))
    throw EvalError(fmt::format("range() of {} items is too large", (int64_t)count));
  in.charge_steps(static_cast<uint64_t>(count));
  ValueList items;
  items.reserve(static_cast<size_t>(count));
  for (int64_t k = 0, i = start; k < count; ++k, i += step) items.push_back(Value::integer(i));
  return in.new_list(std::move(items));
}

void update_dict(Interpreter& in, DictObj& d, CallArgs& args, std::string_view function) {
  if (args.positional.size() > 1)
    throw EvalError(fmt::format("{}() takes at most 1 positional argument", function));
  if (!args.positional.empty()) {
    const Value& source = args.positional[0];
    if (source.is_dict()) {
      for (const auto& [k, v] : source.as_dict().items) d.set(k, v);
    } else {
      for (const Value& pair : in.iterate(source)) {
        if (!pair.is_sequence_like() || pair.as_list().size() != 2) {
          throw EvalError(fmt::format("{}() sequence elements must be pairs", function));
        }
        d.set(pair.as_list()[0], pair.as_list()[1]);
      }
    }
  }
  for (auto& [k, v] : args.keyword) d.set(Value::string(k), v);
}

Value g_dict(Interpreter& in, CallArgs& args) {
  auto d = std::make_shared<DictObj>();
  update_dict(in, *d, args, "dict");
  return Value::dict(std::move(d));
}

Value g_namespace(Interpreter& in, CallArgs& args) {
  auto ns = std::make_shared<NamespaceObj>();
  update_dict(in, ns->attributes, args, "namespace");
  for (const auto& [k, v] : ns->attributes.items) {
    if (v.holds_namespace())
      throw EvalError("a namespace attribute cannot hold a namespace or a loop object");
  }
  return Value::ns(std::move(ns));
}

Value g_raise_exception(Interpreter&, CallArgs& args) {
  Bound a("raise_exception", args, {"message"});
  throw EvalError(py_str(a.get(0, Value::string(""))));
}

Value g_strftime_now(Interpreter& in, CallArgs& args) {
  Bound a("strftime_now", args, {"format"});
  const std::string& format = need_string(a.require(0, "strftime_now", "format"), "format");
  if (format.size() > 4096) throw EvalError("strftime_now() format too long");
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  std::string out(format.size() * 16 + 64, '\0');
  const size_t n = std::strftime(out.data(), out.size(), format.c_str(), &local);
  out.resize(n);
  return in.new_string(std::move(out));
}

// ---- methods of str, dict, list and loop ------------------------------------------------------

Value m_startswith_impl(const Value& self, CallArgs& args, bool ends) {
  Bound a(ends ? "endswith" : "startswith", args, {"prefix", "start", "end"});
  const Value affix = a.require(0, ends ? "endswith" : "startswith", "prefix");
  std::string_view s = self.as_string();
  if (a.has(1) || a.has(2)) {
    const std::vector<size_t> offsets = text::codepoint_offsets(s);
    const int64_t n = static_cast<int64_t>(offsets.size() - 1);
    const auto clamp = [&](const Value& v, int64_t fallback) {
      if (v.is_none() || v.is_undefined()) return fallback;
      int64_t i = need_int(v, "index");
      if (i < 0) i = std::max<int64_t>(0, i + n);
      return std::min(i, n);
    };
    const int64_t begin = clamp(a.get(1, Value::none()), 0);
    const int64_t end = clamp(a.get(2, Value::none()), n);
    if (begin > end) return Value::boolean(false);
    s = s.substr(offsets[begin], offsets[end] - offsets[begin]);
  }
  const auto matches = [&](const Value& v) {
    const std::string& x = need_string(v, ends ? "endswith() argument" : "startswith() argument");
    return ends ? s.ends_with(x) : s.starts_with(x);
  };
  if (affix.is_tuple()) {
    for (const Value& v : affix.as_list()) {
      if (matches(v)) return Value::boolean(true);
    }
    return Value::boolean(false);
  }
  return Value::boolean(matches(affix));
}
Value m_startswith(Interpreter&, const Value& self, CallArgs& a) {
  return m_startswith_impl(self, a, false);
}
Value m_endswith(Interpreter&, const Value& self, CallArgs& a) {
  return m_startswith_impl(self, a, true);
}

Value m_split_impl(Interpreter& in, const Value& self, CallArgs& args, bool from_right) {
  Bound a(from_right ? "rsplit" : "split", args, {"sep", "maxsplit"});
  return string_list(in, split(self.as_string(), a.get(0, Value::none()),
                               need_int(a.get(1, Value::integer(-1)), "maxsplit"), from_right));
}
Value m_split(Interpreter& in, const Value& self, CallArgs& a) {
  return m_split_impl(in, self, a, false);
}
Value m_rsplit(Interpreter& in, const Value& self, CallArgs& a) {
  return m_split_impl(in, self, a, true);
}

Value m_splitlines(Interpreter& in, const Value& self, CallArgs& args) {
  Bound a("splitlines", args, {"keepends"});
  return string_list(in, split_lines(self.as_string(), truthy(a.get(0, Value::boolean(false)))));
}

Value m_strip_impl(Interpreter& in, const Value& self, CallArgs& args, bool left, bool right) {
  Bound a("strip", args, {"chars"});
  const Value chars = a.get(0, Value::none());
  if (chars.is_none())
    return in.new_string(std::string(text::strip(self.as_string(), left, right)));
  return in.new_string(std::string(
      text::strip_chars(self.as_string(), need_string(chars, "strip() argument"), left, right)));
}
Value m_strip(Interpreter& in, const Value& s, CallArgs& a) {
  return m_strip_impl(in, s, a, true, true);
}
Value m_lstrip(Interpreter& in, const Value& s, CallArgs& a) {
  return m_strip_impl(in, s, a, true, false);
}
Value m_rstrip(Interpreter& in, const Value& s, CallArgs& a) {
  return m_strip_impl(in, s, a, false, true);
}

Value m_upper(Interpreter& in, const Value& s, CallArgs& a) {
  Bound("upper", a, {});
  return in.new_string(text::to_upper(s.as_string()));
}
Value m_lower(Interpreter& in, const Value& s, CallArgs& a) {
  Bound("lower", a, {});
  return in.new_string(text::to_lower(s.as_string()));
}
Value m_title(Interpreter& in, const Value& s, CallArgs& a) {
  Bound("title", a, {});
  return in.new_string(text::title_method(s.as_string()));
}
Value m_capitalize(Interpreter& in, const Value& s, CallArgs& a) {
  Bound("capitalize", a, {});
  return in.new_string(text::capitalize(s.as_string()));
}
Value m_replace(Interpreter& in, const Value& s, CallArgs& args) {
  Bound a("replace", args, {"old", "new", "count"});
  return in.new_string(replace(s.as_string(), need_string(a.require(0, "replace", "old"), "old"),
                               need_string(a.require(1, "replace", "new"), "new"),
                               need_int(a.get(2, Value::integer(-1)), "count"), in));
}

// str.find / rfind / index / count; positions in code points.
Value m_find_impl(const Value& self, CallArgs& args, std::string_view name) {
  Bound a(name, args, {"sub", "start", "end"});
  const std::string& s = self.as_string();
  const std::string& sub = need_string(a.require(0, name, "sub"), "substring");
  const std::vector<size_t> offsets = text::codepoint_offsets(s);
  const int64_t n = static_cast<int64_t>(offsets.size() - 1);
  const auto clamp = [&](const Value& v, int64_t fallback) {
    if (v.is_none()) return fallback;
    int64_t i = need_int(v, "index");
    if (i < 0) i = std::max<int64_t>(0, i + n);
    return std::min(i, n);
  };
  const int64_t begin = clamp(a.get(1, Value::none()), 0);
  const int64_t end = clamp(a.get(2, Value::none()), n);
  const auto to_index = [&](size_t byte) {
    return static_cast<int64_t>(std::lower_bound(offsets.begin(), offsets.end(), byte) -
                                offsets.begin());
  };
  if (begin > end) return Value::integer(name == "count" ? 0 : -1);
  const std::string_view window =
      std::string_view(s).substr(offsets[begin], offsets[end] - offsets[begin]);
  if (name == "count") {
    if (sub.empty()) return Value::integer(end - begin + 1);
    int64_t count = 0;
    for (size_t p = window.find(sub); p != std::string_view::npos;
         p = window.find(sub, p + sub.size()))
      ++count;
    return Value::integer(count);
  }
  const size_t hit = (name == "rfind" || name == "rindex") ? window.rfind(sub) : window.find(sub);
  if (hit == std::string_view::npos) {
    if (name == "index" || name == "rindex") throw EvalError("substring not found");
    return Value::integer(-1);
  }
  return Value::integer(to_index(offsets[begin] + hit));
}
Value m_find(Interpreter&, const Value& s, CallArgs& a) {
  return m_find_impl(s, a, "find");
}
Value m_rfind(Interpreter&, const Value& s, CallArgs& a) {
  return m_find_impl(s, a, "rfind");
}
Value m_index(Interpreter&, const Value& s, CallArgs& a) {
  return m_find_impl(s, a, "index");
}
Value m_rindex(Interpreter&, const Value& s, CallArgs& a) {
  return m_find_impl(s, a, "rindex");
}
Value m_count(Interpreter&, const Value& s, CallArgs& a) {
  return m_find_impl(s, a, "count");
}

Value m_join(Interpreter& in, const Value& self, CallArgs& args) {
  Bound a("join", args, {"iterable"});
  std::string out;
  bool first = true;
  for (const Value& item : in.iterate(a.require(0, "join", "iterable"))) {
    if (!first) out += self.as_string();
    first = false;
    if (!item.is_string()) {
      throw EvalError(
          fmt::format("sequence item: expected str instance, {} found", type_name(item)));
    }
    out += item.as_string();
    if (out.size() > (size_t{1} << 31)) throw EvalError("joined string too large");
  }
  return in.new_string(std::move(out));
}

template <bool (*Pred)(char32_t)>
Value m_is(Interpreter&, const Value& self, CallArgs& args) {
  Bound("is", args, {});
  const std::string& s = self.as_string();
  if (s.empty()) return Value::boolean(false);
  for (size_t pos = 0; pos < s.size(); pos += text::codepoint_size(s, pos)) {
    if (!Pred(text::decode_at(s, pos))) return Value::boolean(false);
  }
  return Value::boolean(true);
}

Value m_islower(Interpreter& in, const Value& self, CallArgs& args) {
  return Value::boolean(t_lower(in, self, args));
}
Value m_isupper(Interpreter& in, const Value& self, CallArgs& args) {
  return Value::boolean(t_upper(in, self, args));
}

Value m_removeprefix(Interpreter& in, const Value& self, CallArgs& args) {
  Bound a("removeprefix", args, {"prefix"});
  const std::string& p = need_string(a.require(0, "removeprefix", "prefix"), "prefix");
  const std::string& s = self.as_string();
  return s.starts_with(p) ? in.new_string(s.substr(p.size())) : self;
}
Value m_removesuffix(Interpreter& in, const Value& self, CallArgs& args) {
  Bound a("removesuffix", args, {"suffix"});
  const std::string& p = need_string(a.require(0, "removesuffix", "suffix"), "suffix");
  const std::string& s = self.as_string();
  return !p.empty() && s.ends_with(p) ? in.new_string(s.substr(0, s.size() - p.size())) : self;
}

Value m_partition_impl(Interpreter& in, const Value& self, CallArgs& args, bool from_right) {
  Bound a(from_right ? "rpartition" : "partition", args, {"sep"});
  const std::string& sep = need_string(a.require(0, "partition", "sep"), "separator");
  if (sep.empty()) throw EvalError("empty separator");
  const std::string& s = self.as_string();
  const size_t hit = from_right ? s.rfind(sep) : s.find(sep);
  if (hit == std::string::npos) {
    return from_right ? in.new_tuple({Value::string(""), Value::string(""), self})
                      : in.new_tuple({self, Value::string(""), Value::string("")});
  }
  return in.new_tuple({in.new_string(s.substr(0, hit)), Value::string(sep),
                       in.new_string(s.substr(hit + sep.size()))});
}
Value m_partition(Interpreter& in, const Value& s, CallArgs& a) {
  return m_partition_impl(in, s, a, false);
}
Value m_rpartition(Interpreter& in, const Value& s, CallArgs& a) {
  return m_partition_impl(in, s, a, true);
}

// str.format: {} {0} {name} with !r / !s; format specs are not supported.
Value m_format(Interpreter& in, const Value& self, CallArgs& args) {
  const std::string& f = self.as_string();
  std::string out;
  size_t auto_index = 0;
  bool used_auto = false, used_manual = false;
  for (size_t i = 0; i < f.size(); ++i) {
    const char c = f[i];
    if (c == '}') {
      if (i + 1 < f.size() && f[i + 1] == '}') {
        out.push_back('}');
        ++i;
        continue;
      }
      throw EvalError("Single '}' encountered in format string");
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    if (i + 1 < f.size() && f[i + 1] == '{') {
      out.push_back('{');
      ++i;
      continue;
    }
    const size_t close = f.find('}', i);
    if (close == std::string::npos) throw EvalError("Single '{' encountered in format string");
    std::string field = f.substr(i + 1, close - i - 1);
    i = close;
    char conversion = 's';
    if (const size_t colon = field.find(':'); colon != std::string::npos) {
      if (colon + 1 < field.size())
        throw EvalError("format specs in str.format() are not supported");
      field.resize(colon);
    }
    if (const size_t bang = field.find('!'); bang != std::string::npos) {
      if (bang + 2 != field.size() || (field[bang + 1] != 'r' && field[bang + 1] != 's')) {
        throw EvalError("unsupported conversion in format string");
      }
      conversion = field[bang + 1];
      field.resize(bang);
    }
    Value v;
    if (field.empty()) {
      if (used_manual)
        throw EvalError(
            "cannot switch from manual field specification to automatic field numbering");
      used_auto = true;
      if (auto_index >= args.positional.size())
        throw EvalError("Replacement index out of range for positional args tuple");
      v = args.positional[auto_index++];
    } else if (std::isdigit(static_cast<unsigned char>(field[0]))) {
      if (used_auto)
        throw EvalError(
            "cannot switch from automatic field numbering to manual field specification");
      used_manual = true;
      const auto index = parse_int(field, 10);
      if (!index || *index >= static_cast<int64_t>(args.positional.size())) {
        throw EvalError("Replacement index out of range for positional args tuple");
      }
      v = args.positional[static_cast<size_t>(*index)];
    } else {
      const auto it = std::find_if(args.keyword.begin(), args.keyword.end(),
                                   [&](const auto& kv) { return kv.first == field; });
      if (it == args.keyword.end()) throw EvalError(fmt::format("KeyError: '{}'", field));
      v = it->second;
    }
    if (conversion == 'r') {
      out += py_repr(v);
    } else {
      append_py_str(out, v);
    }
    if (out.size() > (size_t{1} << 31)) throw EvalError("formatted string too large");
  }
  return in.new_string(std::move(out));
}

Value m_dict_get(Interpreter&, const Value& self, CallArgs& args) {
  Bound a("get", args, {"key", "default"});
  const Value key = a.require(0, "get", "key");
  if (const Value* v = self.as_dict().find(key)) return *v;
  return a.get(1, Value::none());
}
Value m_dict_items(Interpreter& in, const Value& self, CallArgs& args) {
  return f_items(in, self, args);
}
Value m_dict_keys(Interpreter& in, const Value& self, CallArgs& args) {
  Bound("keys", args, {});
  return in.new_list(in.iterate(self));
}
Value m_dict_values(Interpreter& in, const Value& self, CallArgs& args) {
  Bound("values", args, {});
  ValueList values;
  for (const auto& [k, v] : self.as_dict().items) values.push_back(v);
  return in.new_list(std::move(values));
}

Value m_list_index(Interpreter&, const Value& self, CallArgs& args) {
  Bound a("index", args, {"value"});
  const Value x = a.require(0, "index", "value");
  const ValueList& items = self.as_list();
  for (size_t i = 0; i < items.size(); ++i) {
    if (equals(items[i], x)) return Value::integer(static_cast<int64_t>(i));
  }
  throw EvalError(fmt::format("{} is not in list", py_repr(x)));
}
Value m_list_count(Interpreter&, const Value& self, CallArgs& args) {
  Bound a("count", args, {"value"});
  const Value x = a.require(0, "count", "value");
  int64_t n = 0;
  for (const Value& item : self.as_list()) n += equals(item, x) ? 1 : 0;
  return Value::integer(n);
}

Value m_loop_cycle(Interpreter&, const Value& self, CallArgs& args) {
  if (args.positional.empty()) throw EvalError("no items for cycling given");
  const LoopObj& loop = self.as_loop();
  return args.positional[static_cast<size_t>(loop.index0) % args.positional.size()];
}
Value m_loop_changed(Interpreter&, const Value& self, CallArgs& args) {
  std::optional<ValueList>& last = *self.as_loop().changed_last;
  bool same = last.has_value() && last->size() == args.positional.size();
  for (size_t i = 0; same && i < last->size(); ++i) same = equals((*last)[i], args.positional[i]);
  if (same) return Value::boolean(false);
  last = args.positional;
  return Value::boolean(true);
}

Value m_center(Interpreter& in, const Value& self, CallArgs& args) {
  Bound a("center", args, {"width"});
  CallArgs width;
  width.positional.push_back(a.require(0, "center", "width"));
  return f_center(in, self, width);
}

struct MethodEntry {
  std::string_view name;
  MethodFn fn;
};

constexpr MethodEntry kStringMethods[] = {
    {"startswith", m_startswith},
    {"endswith", m_endswith},
    {"split", m_split},
    {"rsplit", m_rsplit},
    {"splitlines", m_splitlines},
    {"strip", m_strip},
    {"lstrip", m_lstrip},
    {"rstrip", m_rstrip},
    {"upper", m_upper},
    {"lower", m_lower},
    {"title", m_title},
    {"capitalize", m_capitalize},
    {"replace", m_replace},
    {"find", m_find},
    {"rfind", m_rfind},
    {"index", m_index},
    {"rindex", m_rindex},
    {"count", m_count},
    {"join", m_join},
    {"format", m_format},
    {"isdigit", m_is<text::is_digit>},
    {"isalpha", m_is<text::is_alpha>},
    {"isalnum", m_is<text::is_alnum>},
    {"isspace", m_is<text::is_space>},
    {"islower", m_islower},
    {"isupper", m_isupper},
    {"removeprefix", m_removeprefix},
    {"removesuffix", m_removesuffix},
    {"partition", m_partition},
    {"rpartition", m_rpartition},
    {"center", m_center},
};
constexpr MethodEntry kDictMethods[] = {
    {"get", m_dict_get}, {"items", m_dict_items}, {"keys", m_dict_keys}, {"values", m_dict_values}};
constexpr MethodEntry kListMethods[] = {{"index", m_list_index}, {"count", m_list_count}};
constexpr MethodEntry kLoopMethods[] = {{"cycle", m_loop_cycle}, {"changed", m_loop_changed}};

// Methods that would modify a list or dict: transformers' sandbox refuses them.
constexpr std::string_view kUnsafeListMethods[] = {"append", "extend", "insert", "pop",
                                                   "remove", "clear",  "sort",   "reverse"};
constexpr std::string_view kUnsafeDictMethods[] = {"pop", "popitem", "setdefault", "update",
                                                   "clear"};

struct FilterEntry {
  std::string_view name;
  FilterFn fn;
};
constexpr FilterEntry kFilters[] = {
    {"abs", f_abs},
    {"attr", f_attr},
    {"capitalize", f_capitalize},
    {"center", f_center},
    {"count", f_length},
    {"d", f_default},
    {"default", f_default},
    {"dictsort", f_dictsort},
    {"e", f_escape},
    {"escape", f_escape},
    {"first", f_first},
    {"float", f_float},
    {"format", f_format},
    {"indent", f_indent},
    {"int", f_int},
    {"items", f_items},
    {"join", f_join},
    {"last", f_last},
    {"length", f_length},
    {"list", f_list},
    {"lower", f_lower},
    {"map", f_map},
    {"max", f_max},
    {"min", f_min},
    {"reject", f_reject},
    {"rejectattr", f_rejectattr},
    {"replace", f_replace},
    {"reverse", f_reverse},
    {"round", f_round},
    {"safe", f_safe},
    {"select", f_select},
    {"selectattr", f_selectattr},
    {"sort", f_sort},
    {"string", f_string},
    {"sum", f_sum},
    {"title", f_title},
    {"tojson", f_tojson},
    {"trim", f_trim},
    {"unique", f_unique},
    {"upper", f_upper},
    {"wordcount", f_wordcount},
};

struct TestEntry {
  std::string_view name;
  TestFn fn;
};
constexpr TestEntry kTests[] = {
    {"boolean", t_boolean},
    {"callable", t_callable},
    {"defined", t_defined},
    {"divisibleby", t_divisibleby},
    {"eq", t_eq},
    {"equalto", t_eq},
    {"==", t_eq},
    {"escaped", t_escaped},
    {"even", t_even},
    {"false", t_false},
    {"filter", t_filter},
    {"float", t_float},
    {"ge", t_ge},
    {">=", t_ge},
    {"gt", t_gt},
    {">", t_gt},
    {"greaterthan", t_gt},
    {"in", t_in},
    {"integer", t_integer},
    {"iterable", t_iterable},
    {"le", t_le},
    {"<=", t_le},
    {"lower", t_lower},
    {"lt", t_lt},
    {"<", t_lt},
    {"lessthan", t_lt},
    {"mapping", t_mapping},
    {"ne", t_ne},
    {"!=", t_ne},
    {"none", t_none},
    {"number", t_number},
    {"odd", t_odd},
    {"sameas", t_sameas},
    {"sequence", t_sequence},
    {"string", t_string},
    {"test", t_test},
    {"true", t_true},
    {"undefined", t_undefined},
    {"upper", t_upper},
};

template <typename Entry, size_t N>
auto find_entry(const Entry (&table)[N], std::string_view name) -> decltype(table[0].fn) {
  for (const Entry& e : table) {
    if (e.name == name) return e.fn;
  }
  return nullptr;
}

}  // namespace

FilterFn find_filter(std::string_view name) {
  return find_entry(kFilters, name);
}
TestFn find_test(std::string_view name) {
  return find_entry(kTests, name);
}

Value find_global(std::string_view name) {
  static const auto* const globals = [] {
    auto* m = new std::unordered_map<std::string_view, Value>;
    const std::pair<std::string_view, NativeFn> natives[] = {
        {"range", g_range},
        {"dict", g_dict},
        {"namespace", g_namespace},
        {"raise_exception", g_raise_exception},
        {"strftime_now", g_strftime_now},
    };
    for (const auto& [n, fn] : natives) {
      m->emplace(n, Value::callable(std::make_shared<NativeFunction>(std::string(n), fn)));
    }
    return m;
  }();
  const auto it = globals->find(name);
  return it == globals->end() ? Value() : it->second;
}

std::optional<Value> find_method(const Value& object, std::string_view name) {
  const auto bind = [&](MethodFn fn) {
    return Value::callable(std::make_shared<BoundMethod>(object, name, fn), object);
  };
  const auto unsafe = [&] {
    return Value::undefined(
        fmt::format("access to attribute '{}' of '{}' object is unsafe.", name, type_name(object)));
  };
  switch (object.kind()) {
    case Value::Kind::kString:
      if (const MethodFn fn = find_entry(kStringMethods, name)) return bind(fn);
      break;
    case Value::Kind::kDict:
      if (const MethodFn fn = find_entry(kDictMethods, name)) return bind(fn);
      for (const std::string_view u : kUnsafeDictMethods) {
        if (u == name) return unsafe();
      }
      break;
    case Value::Kind::kList:
    case Value::Kind::kTuple:
      if (const MethodFn fn = find_entry(kListMethods, name)) return bind(fn);
      if (object.is_list()) {
        for (const std::string_view u : kUnsafeListMethods) {
          if (u == name) return unsafe();
        }
      }
      break;
    case Value::Kind::kLoop:
      if (const MethodFn fn = find_entry(kLoopMethods, name)) return bind(fn);
      break;
    default:
      break;
  }
  return std::nullopt;
}

// ---- printf-style formatting ------------------------------------------------------------------

Value percent_format(Interpreter& in, const std::string& format, const Value& args) {
  const bool mapping = args.is_dict();
  ValueList positional;
  if (args.is_tuple()) {
    positional = args.as_list();
  } else if (!mapping) {
    positional.push_back(args);
  }
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < format.size(); ++i) {
    if (format[i] != '%') {
      out.push_back(format[i]);
      continue;
    }
    if (++i >= format.size()) throw EvalError("incomplete format");
    Value v;
    bool have_value = false;
    if (format[i] == '(') {
      const size_t close = format.find(')', i);
      if (close == std::string::npos) throw EvalError("incomplete format key");
      if (!mapping) throw EvalError("format requires a mapping");
      const Value* found =
          args.as_dict().find(std::string_view(format).substr(i + 1, close - i - 1));
      if (found == nullptr)
        throw EvalError(fmt::format("KeyError: '{}'", format.substr(i + 1, close - i - 1)));
      v = *found;
      have_value = true;
      i = close + 1;
    }
    std::string flags;
    while (i < format.size() &&
           std::string_view("-+ 0#").find(format[i]) != std::string_view::npos) {
      flags.push_back(format[i++]);
    }
    std::string width;
    while (i < format.size() && std::isdigit(static_cast<unsigned char>(format[i])))
      width.push_back(format[i++]);
    std::string precision;
    if (i < format.size() && format[i] == '.') {
      ++i;
      precision = "0";
      while (i < format.size() && std::isdigit(static_cast<unsigned char>(format[i])))
        precision.push_back(format[i++]);
    }
    if (i >= format.size()) throw EvalError("incomplete format");
    const char conv = format[i];
    if (conv == '%') {
      out.push_back('%');
      continue;
    }
    if (!have_value) {
      if (mapping) throw EvalError("format requires a mapping");
      if (next >= positional.size()) throw EvalError("not enough arguments for format string");
      v = positional[next++];
    }
    if (width.size() > 4 || precision.size() > 4) throw EvalError("format width too large");
    const bool left = flags.find('-') != std::string::npos;
    const bool zero = flags.find('0') != std::string::npos && !left;
    const std::string sign = flags.find('+') != std::string::npos   ? "+"
                             : flags.find(' ') != std::string::npos ? " "
                                                                    : "";
    std::string spec = std::string(left ? "<" : "") + sign + (zero ? "0" : "") + width;
    std::string piece;
    switch (conv) {
      case 's':
      case 'r':
      case 'a': {
        std::string s = conv == 's' ? py_str(v) : py_repr(v);
        if (!precision.empty()) s = s.substr(0, std::stoul(precision));
        piece = fmt::format(fmt::runtime("{:" + std::string(left ? "<" : ">") + width + "}"), s);
        break;
      }
      case 'd':
      case 'i':
      case 'u': {
        if (v.is_undefined()) fail_undefined(v);
        if (!v.is_number())
          throw EvalError(
              fmt::format("%d format: a real number is required, not {}", type_name(v)));
        const int64_t x = v.is_float() ? static_cast<int64_t>(v.as_double()) : v.as_int();
        piece = fmt::format(fmt::runtime("{:" + spec + "d}"), x);
        break;
      }
      case 'x':
      case 'X':
      case 'o': {
        if (!v.is_int() && !v.is_bool())
          throw EvalError(
              fmt::format("%{} format: an integer is required, not {}", conv, type_name(v)));
        piece = fmt::format(fmt::runtime("{:" + spec + std::string(1, conv) + "}"), v.as_int());
        break;
      }
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G': {
        if (v.is_undefined()) fail_undefined(v);
        if (!v.is_number())
          throw EvalError(fmt::format("must be real number, not {}", type_name(v)));
        piece = fmt::format(fmt::runtime("{:" + spec + "." + (precision.empty() ? "6" : precision) +
                                         std::string(1, conv) + "}"),
                            v.as_double());
        break;
      }
      case 'c': {
        if (v.is_string() && text::codepoint_count(v.as_string()) == 1) {
          piece = v.as_string();
        } else if (v.is_int() && v.as_int() >= 0 && v.as_int() <= 0x10FFFF) {
          text::append_utf8(piece, static_cast<char32_t>(v.as_int()));
        } else {
          throw EvalError("%c requires an int or a unicode character");
        }
        break;
      }
      default:
        throw EvalError(fmt::format("unsupported format character '{}'", conv));
    }
    out += piece;
    in.charge_bytes(piece.size());
  }
  if (!mapping && next < positional.size()) {
    throw EvalError("not all arguments converted during string formatting");
  }
  return in.new_string(std::move(out));
}

}  // namespace hwledger::chat
