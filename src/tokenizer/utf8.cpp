#include "tokenizer/utf8.h"

#include <cstring>

namespace hwledger::tokenizer::utf8 {
namespace {

// Valid range of the second byte of a sequence, which depends on the lead byte (this is what
// excludes overlong forms, surrogates and code points above U+10FFFF).
inline void second_byte_range(uint8_t lead, uint8_t& lo, uint8_t& hi) {
  lo = 0x80;
  hi = 0xBF;
  if (lead == 0xE0)
    lo = 0xA0;
  else if (lead == 0xED)
    hi = 0x9F;
  else if (lead == 0xF0)
    lo = 0x90;
  else if (lead == 0xF4)
    hi = 0x8F;
}

enum class Step { kChar, kInvalid, kTruncated };

// Examines the sequence at p[0..n). kChar: a whole character of `len` bytes. kInvalid: `len`
// bytes form a maximal ill-formed subpart (one U+FFFD). kTruncated: a valid but incomplete
// prefix runs to the end of the input.
inline Step examine(const uint8_t* p, size_t n, size_t& len) {
  uint8_t lead = p[0];
  int need = sequence_length(lead);
  if (need == 1) {
    len = 1;
    return Step::kChar;
  }
  if (need == 0) {
    len = 1;
    return Step::kInvalid;
  }
  uint8_t lo, hi;
  second_byte_range(lead, lo, hi);
  for (int k = 1; k < need; ++k) {
    if (size_t(k) >= n) {
      len = size_t(k);
      return Step::kTruncated;
    }
    uint8_t b = p[k];
    bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) {
      len = size_t(k);
      return Step::kInvalid;
    }
  }
  len = size_t(need);
  return Step::kChar;
}

}  // namespace

void append_code_point(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

size_t valid_prefix_length(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  size_t n = s.size(), i = 0;
  while (i < n) {
    // ASCII runs are the common case: check eight bytes at a time.
    while (i + 8 <= n) {
      uint64_t word;
      std::memcpy(&word, p + i, 8);
      if (word & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= n) break;
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    if (examine(p + i, n - i, len) != Step::kChar) return i;
    i += len;
  }
  return n;
}

std::string make_valid(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  StreamDecoder decoder;
  decoder.feed(s, out);
  decoder.finish(out);
  return out;
}

void StreamDecoder::consume(const uint8_t* p, size_t n, std::string& out, bool at_end) {
  size_t i = 0;
  while (i < n) {
    size_t len;
    switch (examine(p + i, n - i, len)) {
      case Step::kChar:
        out.append(reinterpret_cast<const char*>(p + i), len);
        break;
      case Step::kInvalid:
        out.append(kReplacement);
        break;
      case Step::kTruncated:
        if (at_end) {
          out.append(kReplacement);
        } else {
          std::memcpy(pending_, p + i, len);
          pending_len_ = int(len);
        }
        break;
    }
    i += len;
  }
}

void StreamDecoder::feed(std::string_view bytes, std::string& out) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  size_t n = bytes.size();
  if (pending_len_ > 0) {
    // Complete (or break) the waiting character first, using at most 3 new bytes.
    uint8_t joined[8];
    int old_len = pending_len_;
    size_t take = n < 4 ? n : 4;
    std::memcpy(joined, pending_, size_t(old_len));
    std::memcpy(joined + old_len, p, take);
    pending_len_ = 0;
    size_t len;
    Step step = examine(joined, size_t(old_len) + take, len);
    if (step == Step::kTruncated) {  // still unfinished: everything new was continuation
      std::memcpy(pending_, joined, len);
      pending_len_ = int(len);
      return;
    }
    if (step == Step::kChar)
      out.append(reinterpret_cast<const char*>(joined), len);
    else
      out.append(kReplacement);
    // `len` bytes of `joined` were used; old_len of them were the pending ones.
    size_t used_new = len - size_t(old_len);
    p += used_new;
    n -= used_new;
  }
  consume(p, n, out, /*at_end=*/false);
}

void StreamDecoder::finish(std::string& out) {
  if (pending_len_ > 0) out.append(kReplacement);
  pending_len_ = 0;
}

}  // namespace hwledger::tokenizer::utf8
