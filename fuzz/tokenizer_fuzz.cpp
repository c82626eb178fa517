// libFuzzer target for the tokenizer (library hw_tokenizer). The first byte picks a mode:
//   0-5  the rest is text: encode (with and without special tokens) -> decode -> stream;
//        valid UTF-8 without added tokens must round-trip to its NFC form.
//   6    the rest is a list of int32 ids (any values): decode and stream must agree.
//   7    the rest is a tokenizer.json: loading may only fail with InputError; what loads
//        must encode and decode a fixed text.
// The Qwen3 tokenizer comes from $HWLEDGER_FUZZ_TOKENIZER, else ../shared/models/qwen3.
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc fuzz/tokenizer_fuzz.cpp \
//     src/tokenizer/*.cpp -lpcre2-8 -lutf8proc -lfmt -o tokenizer_fuzz
//   ./tokenizer_fuzz -max_len=4096 corpus/
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/normalizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

#ifndef HWLEDGER_SHARED_DIR
#define HWLEDGER_SHARED_DIR "../shared"
#endif

namespace {

using hwledger::tokenizer::StreamingDetokenizer;
using hwledger::tokenizer::Tokenizer;

const Tokenizer& qwen3() {
  static const Tokenizer tok = [] {
    const char* path = std::getenv("HWLEDGER_FUZZ_TOKENIZER");
    return Tokenizer::load(path ? path : HWLEDGER_SHARED_DIR "/models/qwen3");
  }();
  return tok;
}

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "tokenizer_fuzz: %s\n", what);
  std::abort();
}

void check_stream(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip_special) {
  StreamingDetokenizer stream(tok, skip_special);
  std::string streamed;
  for (int32_t id : ids) {
    std::string piece = stream.push(id);
    if (!hwledger::tokenizer::utf8::is_valid(piece)) fail("streamed a partial character");
    streamed += piece;
  }
  streamed += stream.flush();
  if (streamed != tok.decode(ids, skip_special)) fail("streaming differs from decode");
}

void fuzz_text(std::string_view text, bool add_special) {
  const Tokenizer& tok = qwen3();
  std::vector<int32_t> ids = tok.encode(text, add_special);
  for (int32_t id : ids)
    if (id < 0 || size_t(id) >= tok.vocab_size())
      fail("encode produced an id outside the vocabulary");
  std::string decoded = tok.decode(ids);
  if (!hwledger::tokenizer::utf8::is_valid(decoded)) fail("decode produced invalid UTF-8");
  if (hwledger::tokenizer::utf8::is_valid(text) && text.find('<') == std::string_view::npos &&
      decoded != hwledger::tokenizer::nfc(text))
    fail("round trip lost text");
  check_stream(tok, ids, false);
}

void fuzz_ids(const uint8_t* data, size_t size) {
  std::vector<int32_t> ids(size / 4);
  if (!ids.empty()) std::memcpy(ids.data(), data, ids.size() * 4);
  // Mostly small ids (bytes and common tokens), sometimes anything at all.
  for (int32_t& id : ids)
    if ((id & 0x100000) == 0) id = int32_t(uint32_t(id) % 152000u);
  check_stream(qwen3(), ids, false);
  check_stream(qwen3(), ids, true);
}

void fuzz_loader(std::string_view json) {
  try {
    Tokenizer tok = Tokenizer::from_json(json, {}, "fuzz/tokenizer.json");
    auto ids = tok.encode("Hello, wörld! 你好 <s> \xF0\x9F\x91\x8D 123", true);
    (void)tok.decode(ids);
    check_stream(tok, ids, false);
  } catch (const hwledger::InputError&) {
    // Rejected with a message: fine.
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  uint8_t mode = data[0] & 7;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  if (mode <= 5)
    fuzz_text(rest, mode & 1);
  else if (mode == 6)
    fuzz_ids(data + 1, size - 1);
  else
    fuzz_loader(rest);
  return 0;
}
