#include "util/size.h"

#include <cctype>
#include <cmath>
#include <string>

#include "util/error.h"

namespace hwledger {

uint64_t parse_size(std::string_view text) {
  std::string s(text);
  size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(s, &pos);
  } catch (const std::exception&) {
    fail_input("invalid size '{}': expected a number with an optional unit such as 512M or 8G", s);
  }
  if (!(value >= 0) || std::isinf(value))
    fail_input("invalid size '{}': must be a non-negative number", s);
  std::string unit;
  for (; pos < s.size(); ++pos)
    if (!std::isspace(static_cast<unsigned char>(s[pos])))
      unit += static_cast<char>(std::toupper(static_cast<unsigned char>(s[pos])));
  if (!unit.empty() && unit.back() == 'B') unit.pop_back();
  if (!unit.empty() && unit.back() == 'I') unit.pop_back();
  double mult = 1;
  if (unit.empty()) mult = 1;
  else if (unit == "K") mult = 1024.0;
  else if (unit == "M") mult = 1024.0 * 1024;
  else if (unit == "G") mult = 1024.0 * 1024 * 1024;
  else if (unit == "T") mult = 1024.0 * 1024 * 1024 * 1024;
  else fail_input("invalid size '{}': unknown unit '{}' (use K, M, G or T)", s, unit);
  double bytes = value * mult;
  if (bytes > 1.8e19) fail_input("invalid size '{}': too large", s);
  return static_cast<uint64_t>(bytes);
}

std::string format_bytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  if (u == 0) return fmt::format("{} B", bytes);
  return fmt::format("{:.2f} {}", v, units[u]);
}

}  // namespace hwledger
