// libFuzzer target for the stop-string rule (sched/text_stream.h). Input: a byte n (0-3 stop
// strings), then n stop strings each as a length byte and its bytes, then the text; the text is
// pushed in pieces whose sizes come from the input's own bytes. Whatever the pieces, what comes
// out is a prefix of the text that holds no stop string; when the text contains a stop string the
// matcher stops, and the output followed by the matched stop is a prefix of the text; when it does
// not, the output is the whole text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "sched/text_stream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  size_t at = 0;
  auto next = [&]() -> int { return at < size ? data[at++] : -1; };
  int count = next();
  if (count < 0) return 0;
  std::vector<std::string> stops;
  for (int i = 0; i < count % 4; ++i) {
    int len = next();
    if (len < 0) return 0;
    len %= 16;
    if (at + len > size) return 0;
    stops.emplace_back(reinterpret_cast<const char*>(data + at), len);
    at += len;
  }
  const std::string text(reinterpret_cast<const char*>(data + at), size - at);

  hwledger::StopStringMatcher matcher(stops);
  std::string out;
  size_t pos = 0, k = 0;
  while (pos < text.size()) {
    size_t piece = 1 + static_cast<uint8_t>(text[k++ % text.size()]) % 7;  // 1..7 bytes
    piece = std::min(piece, text.size() - pos);
    out += matcher.push(std::string_view(text).substr(pos, piece));
    pos += piece;
    if (text.compare(0, out.size(), out) != 0) std::abort();  // always a prefix of the text
  }
  out += matcher.finish();

  bool contains = false;
  for (const auto& s : stops) {
    if (s.empty()) continue;
    if (text.find(s) != std::string::npos) contains = true;
    if (out.find(s) != std::string::npos) std::abort();  // a stop string never goes out
  }
  if (matcher.stopped() != contains) std::abort();
  if (contains) {
    if (text.compare(0, out.size() + matcher.matched().size(), out + matcher.matched()) != 0) std::abort();
  } else if (out != text) {
    std::abort();
  }
  return 0;
}
