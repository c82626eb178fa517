#include "tokenizer/normalizer.h"

#include <utf8proc.h>

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace hwledger::tokenizer {
namespace {

using nlohmann::json;

// One bit per code point: set when the code point can never change under NFC and never
// combines with what precedes it (canonical combining class 0, no canonical decomposition,
// not the second half of any canonical composition). Text made only of such code points is
// NFC already, and a window of other code points can be normalized on its own starting at
// the last such code point before it.
class NfcInertTable {
 public:
  NfcInertTable() : bits_((0x110000 + 63) / 64, 0) {
    std::vector<bool> second(0x110000, false);
    // Hangul: leading+vowel and LV+trailing compose algorithmically.
    for (char32_t c = 0x1161; c <= 0x1175; ++c) second[c] = true;
    for (char32_t c = 0x11A8; c <= 0x11C2; ++c) second[c] = true;
    for (utf8proc_int32_t c = 0; c < 0x110000; ++c) {
      const utf8proc_property_t* prop = utf8proc_get_property(c);
      if (prop->decomp_seqindex == UINT16_MAX || prop->decomp_type != 0) continue;
      // Canonical decomposition: every element after the first may be a composition's second.
      utf8proc_int32_t buf[8];
      int last_class = 0;
      utf8proc_ssize_t n = utf8proc_decompose_char(c, buf, 8, UTF8PROC_DECOMPOSE, &last_class);
      for (utf8proc_ssize_t k = 1; k < n && k < 8; ++k) second[size_t(buf[k])] = true;
    }
    for (utf8proc_int32_t c = 0; c < 0x110000; ++c) {
      if (c >= 0xD800 && c <= 0xDFFF) continue;
      const utf8proc_property_t* prop = utf8proc_get_property(c);
      bool has_canonical_decomposition =
          prop->decomp_seqindex != UINT16_MAX && prop->decomp_type == 0;
      if (prop->combining_class != 0 || has_canonical_decomposition || second[size_t(c)]) continue;
      bits_[size_t(c) >> 6] |= uint64_t(1) << (c & 63);
    }
  }
  bool inert(char32_t c) const { return (bits_[c >> 6] >> (c & 63)) & 1; }

 private:
  std::vector<uint64_t> bits_;  // [0x110000 / 64]
};

const NfcInertTable& nfc_inert_table() {
  static const NfcInertTable table;
  return table;
}

void append_utf8proc(std::string_view in, utf8proc_option_t options, std::string& out) {
  utf8proc_uint8_t* result = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(in.data()),
                                    utf8proc_ssize_t(in.size()), &result,
                                    utf8proc_option_t(options | UTF8PROC_STABLE));
  if (n < 0) {
    // Only reachable with invalid UTF-8, which the tokenizer repairs before normalizing.
    std::free(result);
    fail("utf8proc failed on a {}-byte piece: {}", in.size(), utf8proc_errmsg(n));
  }
  out.append(reinterpret_cast<const char*>(result), size_t(n));
  std::free(result);
}

class UnicodeNormalizer final : public Normalizer {
 public:
  explicit UnicodeNormalizer(utf8proc_option_t options) : options_(options) {}
  std::string_view normalize(std::string_view in, std::string& scratch) const override {
    scratch.clear();
    append_utf8proc(in, options_, scratch);
    return scratch;
  }

 private:
  utf8proc_option_t options_;
};

class NfcNormalizer final : public Normalizer {
 public:
  NfcNormalizer() { nfc_inert_table(); }
  std::string_view normalize(std::string_view in, std::string& scratch) const override {
    const NfcInertTable& table = nfc_inert_table();
    size_t pos = 0, last_inert = 0;
    bool all_inert = true;
    while (pos < in.size()) {
      // ASCII is inert: skip it eight bytes at a time.
      uint64_t word;
      if (pos + 8 <= in.size() &&
          (std::memcpy(&word, in.data() + pos, 8), (word & 0x8080808080808080ull) == 0)) {
        pos += 8;
        last_inert = pos - 1;
        continue;
      }
      if (uint8_t(in[pos]) < 0x80) {
        last_inert = pos++;
        continue;
      }
      size_t start = pos;
      char32_t cp = utf8::next_code_point(in, pos);
      if (table.inert(cp)) {
        last_inert = start;
      } else {
        all_inert = false;
        break;
      }
    }
    if (all_inert) return in;
    scratch.clear();
    scratch.reserve(in.size() + 16);
    nfc_from(in, last_inert, scratch);
    return scratch;
  }

 private:
  // Normalizes `in`, of which in[0..window_start) is known to be NFC and inert.
  static void nfc_from(std::string_view in, size_t window_start, std::string& out) {
    const NfcInertTable& table = nfc_inert_table();
    out.append(in.substr(0, window_start));
    size_t pos = window_start;
    while (pos < in.size()) {
      // The window runs from an inert code point (or the start) through the following
      // non-inert ones; it ends before the next inert code point.
      size_t window_end = pos;
      bool first = true, has_non_inert = false;
      while (window_end < in.size()) {
        size_t next = window_end;
        char32_t cp = utf8::next_code_point(in, next);
        bool inert = table.inert(cp);
        if (inert && !first) break;
        has_non_inert |= !inert;
        first = false;
        window_end = next;
      }
      std::string_view window = in.substr(pos, window_end - pos);
      if (has_non_inert)
        append_utf8proc(window, UTF8PROC_COMPOSE, out);
      else
        out.append(window);
      pos = window_end;
    }
  }
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  std::string_view normalize(std::string_view in, std::string& scratch) const override {
    if (in.empty()) return in;  // like `tokenizers`: nothing is prepended to an empty piece
    scratch.assign(prefix_);
    scratch.append(in);
    return scratch;
  }

 private:
  std::string prefix_;
};

class ReplaceStringNormalizer final : public Normalizer {
 public:
  ReplaceStringNormalizer(std::string pattern, std::string content)
      : pattern_(std::move(pattern)), content_(std::move(content)) {}
  std::string_view normalize(std::string_view in, std::string& scratch) const override {
    if (pattern_.empty()) return in;
    size_t hit = in.find(pattern_);
    if (hit == std::string_view::npos) return in;
    scratch.clear();
    size_t pos = 0;
    while (hit != std::string_view::npos) {
      scratch.append(in.substr(pos, hit - pos));
      scratch.append(content_);
      pos = hit + pattern_.size();
      hit = in.find(pattern_, pos);
    }
    scratch.append(in.substr(pos));
    return scratch;
  }

 private:
  std::string pattern_, content_;
};

class ReplaceRegexNormalizer final : public Normalizer {
 public:
  ReplaceRegexNormalizer(Regex regex, std::string content)
      : regex_(std::move(regex)), content_(std::move(content)) {}
  std::string_view normalize(std::string_view in, std::string& scratch) const override {
    std::string out;
    size_t pos = 0;
    bool any = false;
    regex_.for_each_match(in, [&](size_t begin, size_t end) {
      if (begin == end) return;
      out.append(in.substr(pos, begin - pos));
      out.append(content_);
      pos = end;
      any = true;
    });
    if (!any) return in;
    out.append(in.substr(pos));
    scratch = std::move(out);
    return scratch;
  }

 private:
  Regex regex_;
  std::string content_;
};

class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> steps)
      : steps_(std::move(steps)) {}
  std::string_view normalize(std::string_view in, std::string& scratch) const override {
    std::string_view current = in;
    std::string other;
    for (const auto& step : steps_) {
      // A step may read from `scratch` while writing its result elsewhere.
      std::string_view next = step->normalize(current, other);
      if (next.data() == other.data()) {
        scratch.swap(other);
        current = scratch;
      } else {
        current = next;
      }
    }
    if (current.data() != in.data() && current.data() != scratch.data()) {
      scratch.assign(current);
      return scratch;
    }
    return current;
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

std::string string_field(const json& spec, const char* key, const std::string& origin,
                         const char* component) {
  auto it = spec.find(key);
  if (it == spec.end() || !it->is_string())
    fail_input("{}: normalizer {} needs a string '{}'", origin, component, key);
  return it->get<std::string>();
}

}  // namespace

std::string nfc(std::string_view in) {
  std::string scratch;
  NfcNormalizer normalizer;
  return std::string(normalizer.normalize(in, scratch));
}

std::unique_ptr<Normalizer> make_normalizer(const json& spec, const std::string& origin) {
  if (spec.is_null()) return nullptr;
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string())
    fail_input("{}: normalizer must be an object with a 'type'", origin);
  const std::string type = spec["type"].get<std::string>();
  if (type == "NFC") return std::make_unique<NfcNormalizer>();
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(UTF8PROC_DECOMPOSE);
  if (type == "NFKC")
    return std::make_unique<UnicodeNormalizer>(
        utf8proc_option_t(UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
  if (type == "NFKD")
    return std::make_unique<UnicodeNormalizer>(
        utf8proc_option_t(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT));
  if (type == "Prepend")
    return std::make_unique<PrependNormalizer>(string_field(spec, "prepend", origin, "Prepend"));
  if (type == "Replace") {
    std::string content = string_field(spec, "content", origin, "Replace");
    const json& pattern = spec.value("pattern", json());
    if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string())
      return std::make_unique<ReplaceStringNormalizer>(pattern["String"].get<std::string>(),
                                                       std::move(content));
    if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string())
      return std::make_unique<ReplaceRegexNormalizer>(
          Regex(pattern["Regex"].get<std::string>(), origin + ": normalizer Replace"),
          std::move(content));
    fail_input("{}: normalizer Replace needs a pattern {{\"String\": ...}} or {{\"Regex\": ...}}",
               origin);
  }
  if (type == "Sequence") {
    const json& list = spec.value("normalizers", json());
    if (!list.is_array()) fail_input("{}: normalizer Sequence needs a 'normalizers' array", origin);
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (const json& item : list) {
      auto step = make_normalizer(item, origin);
      if (step) steps.push_back(std::move(step));
    }
    return std::make_unique<SequenceNormalizer>(std::move(steps));
  }
  fail_input("{}: unsupported normalizer type '{}'", origin, type);
}

}  // namespace hwledger::tokenizer
