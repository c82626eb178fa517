#include "tokenizer/decoder.h"

#include <nlohmann/json.hpp>

#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace hwledger::tokenizer {
namespace {

using nlohmann::json;

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void replace_all(std::string& text, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  size_t hit = text.find(from);
  if (hit == std::string::npos) return;
  std::string out;
  size_t pos = 0;
  while (hit != std::string::npos) {
    out.append(text, pos, hit - pos);
    out.append(to);
    pos = hit + from.size();
    hit = text.find(from, pos);
  }
  out.append(text, pos);
  text.swap(out);
}

bool is_single_char(std::string_view s) {
  if (s.empty()) return false;
  size_t pos = 0;
  utf8::next_code_point(s, pos);
  return pos == s.size();
}

std::string char_field(const json& spec, const char* key, const std::string& fallback,
                       const std::string& origin, const char* type) {
  auto it = spec.find(key);
  if (it == spec.end() || it->is_null()) return fallback;
  if (!it->is_string()) fail_input("{}: decoder {}: '{}' must be a string", origin, type, key);
  return it->get<std::string>();
}

}  // namespace

DecoderPipeline DecoderPipeline::from_json(const json& spec, const std::string& origin) {
  DecoderPipeline pipeline;
  if (spec.is_null()) {
    // `tokenizers` joins the tokens with spaces when there is no decoder.
    pipeline.ops_.push_back(Op(OpKind::kJoinWithSpace));
    pipeline.first_token_differs_ = true;
    return pipeline;
  }
  pipeline.add(spec, origin);
  return pipeline;
}

void DecoderPipeline::add_token_op(Op op, const std::string& origin, const std::string& type) {
  if (strip_start_.count > 0 || strip_end_.count > 0)
    fail_input("{}: unsupported decoder Sequence: {} after a Strip that follows Fuse", origin,
               type);
  ops_.push_back(std::move(op));
}

void DecoderPipeline::add(const json& spec, const std::string& origin) {
  if (!spec.is_object() || !spec.contains("type") || !spec["type"].is_string())
    fail_input("{}: decoder must be an object with a 'type'", origin);
  const std::string type = spec["type"].get<std::string>();
  if (type == "Sequence") {
    const json& list = spec.value("decoders", json());
    if (!list.is_array()) fail_input("{}: decoder Sequence needs a 'decoders' array", origin);
    for (const json& item : list) add(item, origin);
    return;
  }
  if (type == "ByteLevel") {
    add_token_op(Op(OpKind::kByteLevel), origin, type);
    return;
  }
  if (type == "ByteFallback") {
    if (fused_) fail_input("{}: unsupported decoder Sequence: ByteFallback after Fuse", origin);
    add_token_op(Op(OpKind::kByteFallback), origin, type);
    return;
  }
  if (type == "Fuse") {
    fused_ = true;  // tokens are concatenated anyway; later steps act on the whole text
    return;
  }
  if (type == "Replace") {
    const json& pattern = spec.value("pattern", json());
    if (!pattern.is_object() || !pattern.contains("String") || !pattern["String"].is_string())
      fail_input("{}: unsupported decoder Replace pattern {} (only {{\"String\": ...}})", origin,
                 pattern.dump());
    Op op(OpKind::kReplace);
    op.from = pattern["String"].get<std::string>();
    op.to = char_field(spec, "content", "", origin, "Replace");
    // After Fuse a pattern could span two tokens, unless it is a single character.
    if (fused_ && !is_single_char(op.from))
      fail_input("{}: unsupported decoder Replace of '{}' after Fuse", origin, op.from);
    add_token_op(std::move(op), origin, type);
    return;
  }
  if (type == "Strip") {
    std::string content = char_field(spec, "content", " ", origin, "Strip");
    if (!is_single_char(content))
      fail_input("{}: decoder Strip: content '{}' must be one character", origin, content);
    size_t start = spec.value("start", size_t(0)), stop = spec.value("stop", size_t(0));
    if (fused_) {
      // Acts on the whole text: at most one Strip of each end.
      if ((start > 0 && strip_start_.count > 0) || (stop > 0 && strip_end_.count > 0))
        fail_input("{}: unsupported decoder Sequence: two Strip steps after Fuse", origin);
      if (start > 0) strip_start_ = Strip{content, start};
      if (stop > 0) strip_end_ = Strip{content, stop};
      return;
    }
    Op op(OpKind::kStrip);
    op.from = content;
    op.start = start;
    op.stop = stop;
    add_token_op(std::move(op), origin, type);
    return;
  }
  if (type == "Metaspace") {
    Op op(OpKind::kMetaspace);
    op.from = char_field(spec, "replacement", "\u2581", origin, "Metaspace");
    std::string scheme = spec.contains("prepend_scheme") && spec["prepend_scheme"].is_string()
                             ? spec["prepend_scheme"].get<std::string>()
                             : (spec.value("add_prefix_space", true) ? "always" : "never");
    bool strip = scheme != "never";
    if (fused_) {
      // The fused text is the single "first token".
      op.strip_first = false;
      add_token_op(std::move(op), origin, type);
      if (strip) strip_start_ = Strip{" ", 1};
      return;
    }
    op.strip_first = strip;
    first_token_differs_ |= strip;
    add_token_op(std::move(op), origin, type);
    return;
  }
  fail_input("{}: unsupported decoder type '{}'", origin, type);
}

std::string DecoderPipeline::token_bytes(std::string_view token, bool first) const {
  std::string text(token);
  std::string scratch;
  for (const Op& op : ops_) {
    switch (op.kind) {
      case OpKind::kByteLevel:
        // A token with a character outside the byte alphabet is kept as it is (`tokenizers`).
        if (byte_level::decode_token(text, scratch)) text.swap(scratch);
        break;
      case OpKind::kReplace:
        replace_all(text, op.from, op.to);
        break;
      case OpKind::kByteFallback:
        if (text.size() == 6 && text.starts_with("<0x") && text.back() == '>' &&
            hex_digit(text[3]) >= 0 && hex_digit(text[4]) >= 0)
          text.assign(1, char(hex_digit(text[3]) * 16 + hex_digit(text[4])));
        break;
      case OpKind::kStrip: {
        size_t begin = 0, end = text.size();
        for (size_t k = 0;
             k < op.start && std::string_view(text).substr(begin).starts_with(op.from); ++k)
          begin += op.from.size();
        for (size_t k = 0; k < op.stop && end >= begin + op.from.size() &&
                           std::string_view(text).substr(0, end).ends_with(op.from);
             ++k)
          end -= op.from.size();
        text = text.substr(begin, end - begin);
        break;
      }
      case OpKind::kMetaspace:
        replace_all(text, op.from, " ");
        if (first && op.strip_first && !text.empty() && text[0] == ' ') text.erase(0, 1);
        break;
      case OpKind::kJoinWithSpace:
        if (!first) text.insert(0, 1, ' ');
        break;
    }
  }
  return text;
}

}  // namespace hwledger::tokenizer
