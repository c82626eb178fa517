// libFuzzer target: arbitrary bytes through the sidecar's input path (the bounded line splitter,
// fed in pieces whose sizes come from the input; the JSON-RPC envelope check; the params checks
// of generate, load_model, cancel, cache_clear and bench) and the serialization of every reply.
// Must never crash, hang, leak or hit UB; every line ends as a request or an error reply.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "rpc/generate_params.h"
#include "rpc/jsonrpc.h"
#include "rpc/line_splitter.h"

using namespace hwledger::rpc;

namespace {

void check_params(const Request& request) {
  Params p(request.params);
  if (request.method == "generate") {
    GenerateParams g = parse_generate_params(request.params);
    if (g.kind == GenerateParams::PromptKind::Ids && g.prompt_ids.empty()) __builtin_trap();
  } else if (request.method == "load_model") {
    p.string("model");
    p.opt_string("kv_dtype");
    p.opt_unsigned("max_kv_size");
  } else if (request.method == "cancel") {
    p.string("request_id", 256);
  } else if (request.method == "cache_clear") {
    p.opt_string("tier");
  } else if (request.method == "bench") {
    p.opt_integer("prompt_tokens", 1, 1 << 20);
    p.opt_number("temperature", 0, 100);
    p.opt_bool("stream");
  }
}

void handle(std::string_view line) {
  if (is_blank(line)) return;
  ParsedLine parsed = parse_line(line);
  if (!parsed.request) {
    std::string reply = to_line(parsed.error_reply);
    if (reply.find('\n') != std::string::npos) __builtin_trap();  // one reply, one line
    return;
  }
  try {
    check_params(*parsed.request);
    to_line(make_result(parsed.request->id, parsed.request->params));
  } catch (const RpcError& e) {
    if (e.code() != kInvalidParams) __builtin_trap();
    to_line(make_error(parsed.request->id, e));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  // The first byte picks the read size (1..256 bytes per read), so lines split across reads.
  const size_t chunk = size_t{data[0]} + 1;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  size_t overflows = 0;
  LineSplitter splitter(4096, {handle, [&](size_t) { ++overflows; }});
  for (size_t at = 0; at < input.size(); at += chunk) splitter.feed(input.substr(at, chunk));
  splitter.finish();
  if (splitter.buffered_bytes() != 0) __builtin_trap();
  return 0;
}
