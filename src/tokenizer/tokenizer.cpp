#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tokenizer/json_loader.h"
#include "tokenizer/tokenizer_impl.h"
#include "util/error.h"

namespace hwledger::tokenizer {

using detail::TokenizerImpl;
using nlohmann::json;

namespace {

std::string read_file(const std::filesystem::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) fail_input("cannot read '{}': {}", path.string(), std::strerror(errno));
  std::ostringstream buffer;
  buffer << file.rdbuf();
  if (file.bad()) fail_input("error reading '{}'", path.string());
  return std::move(buffer).str();
}

json parse_json(std::string_view text, const std::string& origin) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    fail_input("{}: malformed JSON: {}", origin, e.what());
  }
}

bool get_bool(const json& object, const char* key, bool fallback) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  return it->is_boolean() ? it->get<bool>() : fallback;
}

std::string get_string(const json& object, const char* key, const std::string& origin,
                       const char* where) {
  auto it = object.find(key);
  if (it == object.end() || it->is_null()) return {};
  if (!it->is_string()) fail_input("{}: {}.{} must be a string", origin, where, key);
  return it->get<std::string>();
}

// Model options from the tree; vocab and merges were collected by the streaming parser.
BpeSource parse_bpe(const json& model, TokenizerJson& parsed, const std::string& origin) {
  if (!model.is_object()) fail_input("{}: 'model' must be an object", origin);
  std::string type = model.contains("type") && model["type"].is_string()
                         ? model["type"].get<std::string>()
                         : (parsed.has_merges ? "BPE" : "");
  if (type != "BPE")
    fail_input("{}: unsupported model type '{}' (only BPE)", origin,
               type.empty() ? std::string("(none)") : type);
  if (model.contains("dropout") && !model["dropout"].is_null() &&
      (!model["dropout"].is_number() || model["dropout"].get<double>() != 0.0))
    fail_input("{}: unsupported BPE dropout {} (encoding would be random)", origin,
               model["dropout"].dump());
  if (!parsed.has_vocab) fail_input("{}: model.vocab is missing", origin);
  BpeSource source;
  source.vocab = std::move(parsed.vocab);
  source.merges = std::move(parsed.merges);
  if (model.contains("unk_token") && model["unk_token"].is_string())
    source.unk_token = model["unk_token"].get<std::string>();
  source.continuing_subword_prefix =
      get_string(model, "continuing_subword_prefix", origin, "model");
  source.end_of_word_suffix = get_string(model, "end_of_word_suffix", origin, "model");
  source.byte_fallback = get_bool(model, "byte_fallback", false);
  source.fuse_unk = get_bool(model, "fuse_unk", false);
  source.ignore_merges = get_bool(model, "ignore_merges", false);
  return source;
}

std::vector<AddedToken> parse_added_tokens(const json& doc, const std::string& origin) {
  std::vector<AddedToken> tokens;
  auto list_it = doc.find("added_tokens");
  if (list_it == doc.end() || list_it->is_null()) return tokens;
  const json& list = *list_it;
  if (!list.is_array()) fail_input("{}: added_tokens must be an array", origin);
  for (size_t i = 0; i < list.size(); ++i) {
    const json& item = list[i];
    if (!item.is_object() || !item.contains("id") || !item["id"].is_number_integer() ||
        !item.contains("content") || !item["content"].is_string())
      fail_input("{}: added_tokens[{}] needs an integer 'id' and a string 'content'", origin, i);
    AddedToken token;
    token.id = item["id"].get<int32_t>();
    if (token.id < 0 || token.id >= (1 << 24))
      fail_input("{}: added_tokens[{}] has id {} (must be in [0, 16777216))", origin, i, token.id);
    token.content = item["content"].get<std::string>();
    token.single_word = get_bool(item, "single_word", false);
    token.lstrip = get_bool(item, "lstrip", false);
    token.rstrip = get_bool(item, "rstrip", false);
    token.special = get_bool(item, "special", false);
    token.normalized = get_bool(item, "normalized", !token.special);
    tokens.push_back(std::move(token));
  }
  return tokens;
}

// "<s>" or {"content": "<s>", ...} or null.
std::string token_text(const json& value, const std::string& origin, const char* key) {
  if (value.is_null()) return {};
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string())
    return value["content"].get<std::string>();
  fail_input("{}: '{}' must be a string or {{\"content\": ...}}, got {}", origin, key,
             value.dump());
}

void parse_config(const json& doc, TokenizerImpl& impl, const std::string& origin) {
  TokenizerConfig& config = impl.config;
  // Defaults from tokenizer.json's post-processor.
  config.add_bos_token = !impl.post.prefix().empty();
  config.add_eos_token = !impl.post.suffix().empty();
  if (doc.is_null()) return;
  if (!doc.is_object()) fail_input("{}: must be a JSON object", origin);
  if (doc.contains("chat_template")) {
    const json& value = doc["chat_template"];
    if (value.is_string()) {
      config.chat_template = value.get<std::string>();
    } else if (value.is_array()) {
      // [{"name": "default", "template": "..."}, {"name": "tool_use", ...}]
      for (const json& item : value) {
        if (!item.is_object() || !item.contains("name") || !item.contains("template") ||
            !item["name"].is_string() || !item["template"].is_string())
          fail_input("{}: chat_template list entries need 'name' and 'template' strings", origin);
        config.chat_templates[item["name"].get<std::string>()] =
            item["template"].get<std::string>();
      }
      auto it = config.chat_templates.find("default");
      if (it != config.chat_templates.end()) config.chat_template = it->second;
    } else if (!value.is_null()) {
      fail_input("{}: chat_template must be a string or a list", origin);
    }
  }
  config.bos_token = token_text(doc.value("bos_token", json()), origin, "bos_token");
  config.eos_token = token_text(doc.value("eos_token", json()), origin, "eos_token");
  config.pad_token = token_text(doc.value("pad_token", json()), origin, "pad_token");
  config.unk_token = token_text(doc.value("unk_token", json()), origin, "unk_token");
  config.add_bos_token = get_bool(doc, "add_bos_token", config.add_bos_token);
  config.add_eos_token = get_bool(doc, "add_eos_token", config.add_eos_token);
  config.clean_up_tokenization_spaces = get_bool(doc, "clean_up_tokenization_spaces", false);
}

std::shared_ptr<TokenizerImpl> build_impl(std::string_view tokenizer_json,
                                          std::string_view config_json, const std::string& origin,
                                          const std::string& config_origin) {
  auto impl = std::make_shared<TokenizerImpl>();
  impl->origin = origin;
  TokenizerJson parsed = parse_tokenizer_json(tokenizer_json, origin);
  json& doc = parsed.doc;
  if (!doc.is_object()) fail_input("{}: must be a JSON object", origin);
  if (!doc.contains("model")) fail_input("{}: has no 'model'", origin);

  impl->normalizer = make_normalizer(doc.value("normalizer", json()), origin);
  impl->pre = make_pre_tokenizer(doc.value("pre_tokenizer", json()), origin);
  impl->model = std::make_unique<BpeModel>(parse_bpe(doc["model"], parsed, origin),
                                           impl->pre.byte_level, origin);
  impl->post = PostProcessor::from_json(doc.value("post_processor", json()), origin);
  impl->decoder = DecoderPipeline::from_json(doc.value("decoder", json()), origin);
  std::vector<AddedToken> added = parse_added_tokens(doc, origin);

  // Id tables over model and added ids.
  size_t vocab_size = impl->model->id_limit();
  for (const AddedToken& token : added) vocab_size = std::max(vocab_size, size_t(token.id) + 1);
  impl->vocab_size = vocab_size;
  impl->added_index.assign(vocab_size, -1);
  impl->special.assign(vocab_size, 0);
  for (size_t i = 0; i < added.size(); ++i) {
    impl->added_index[size_t(added[i].id)] = int32_t(i);
    impl->special[size_t(added[i].id)] = added[i].special ? 1 : 0;
    impl->added_ids.insert(added[i].content, added[i].id);
  }
  impl->added.build(std::move(added), impl->normalizer.get());

  // What each id decodes to.
  impl->decoded_offsets.assign(vocab_size + 1, 0);
  impl->decoded_bytes.reserve(vocab_size * 6);
  for (size_t id = 0; id < vocab_size; ++id) {
    impl->decoded_offsets[id] = uint32_t(impl->decoded_bytes.size());
    if (impl->known(int32_t(id)))
      impl->decoded_bytes += impl->decoder.token_bytes(impl->token_string(int32_t(id)), false);
  }
  impl->decoded_offsets[vocab_size] = uint32_t(impl->decoded_bytes.size());

  json config_doc;
  if (!config_json.empty()) config_doc = parse_json(config_json, config_origin);
  parse_config(config_doc, *impl, config_origin);
  TokenizerConfig& config = impl->config;
  auto id_of = [&](const std::string& token) {
    if (token.empty()) return int32_t(-1);
    int32_t id = impl->added_ids.find(token);
    return id >= 0 ? id : impl->model->token_to_id(token);
  };
  config.bos_id = id_of(config.bos_token);
  config.eos_id = id_of(config.eos_token);
  config.pad_id = id_of(config.pad_token);
  config.unk_id = id_of(config.unk_token);
  return impl;
}

// Values of the wrong JSON type surface as nlohmann exceptions: report them as bad input.
std::shared_ptr<TokenizerImpl> build(std::string_view tokenizer_json, std::string_view config_json,
                                     const std::string& origin, const std::string& config_origin) {
  try {
    return build_impl(tokenizer_json, config_json, origin, config_origin);
  } catch (const json::exception& e) {
    fail_input("{}: unexpected content: {}", origin, e.what());
  }
}

}  // namespace

// ---- encoding ------------------------------------------------------------------------------

namespace detail {

void TokenizerImpl::encode(std::string_view input, bool add_special_tokens, bool parse_special,
                           std::vector<int32_t>& out) const {
  std::string repaired;
  std::string_view text = input;
  if (!utf8::is_valid(input)) {
    repaired = utf8::make_valid(input);
    text = repaired;
  }
  if (text.size() >= (size_t(1) << 31))
    fail_input("text of {} bytes is too long to encode (limit 2 GiB)", text.size());

  BpeScratch bpe_scratch;
  PreTokens pre_tokens;
  std::string normalized_scratch;
  std::vector<AddedVocabulary::Segment> segments, normalized_segments;

  auto run_model = [&](std::string_view piece, bool first_piece) {
    if (piece.empty()) return;
    if (!pre.pre_tokenizer) {
      model->tokenize(piece, out, bpe_scratch);
      return;
    }
    pre_tokens.reset(piece);
    pre.pre_tokenizer->apply(pre_tokens, first_piece);
    for (auto span : pre_tokens.spans) model->tokenize(pre_tokens.view(span), out, bpe_scratch);
  };

  added.split(text, /*normalized_pass=*/false, parse_special, segments);
  for (const auto& segment : segments) {
    if (segment.id >= 0) {
      out.push_back(segment.id);
      continue;
    }
    std::string_view piece = text.substr(segment.begin, segment.end - segment.begin);
    bool first_piece = segment.begin == 0;
    std::string_view normal = normalizer ? normalizer->normalize(piece, normalized_scratch) : piece;
    if (!added.has_normalized()) {
      run_model(normal, first_piece);
      continue;
    }
    normalized_segments.clear();
    added.split(normal, /*normalized_pass=*/true, parse_special, normalized_segments);
    for (const auto& inner : normalized_segments) {
      if (inner.id >= 0)
        out.push_back(inner.id);
      else
        run_model(normal.substr(inner.begin, inner.end - inner.begin),
                  first_piece && inner.begin == 0);
    }
  }
  if (add_special_tokens) post.apply(out);
}

}  // namespace detail

// ---- Tokenizer -----------------------------------------------------------------------------

Tokenizer::Tokenizer(std::shared_ptr<const TokenizerImpl> impl) : impl_(std::move(impl)) {}

Tokenizer Tokenizer::load(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path json_path(path);
  std::error_code ec;
  if (fs::is_directory(json_path, ec)) json_path /= "tokenizer.json";
  if (!fs::exists(json_path, ec))
    fail_input(
        "tokenizer: '{}' does not exist (expected a model directory with tokenizer.json, "
        "or a tokenizer.json file)",
        json_path.string());
  std::string tokenizer_json = read_file(json_path);
  fs::path dir = json_path.parent_path();
  fs::path config_path = dir / "tokenizer_config.json";
  std::string config_json;
  if (fs::exists(config_path, ec)) config_json = read_file(config_path);
  auto impl = build(tokenizer_json, config_json, json_path.string(), config_path.string());
  // Newer checkpoints keep the chat template in a file of its own.
  fs::path template_path = dir / "chat_template.jinja";
  if (impl->config.chat_template.empty() && fs::exists(template_path, ec))
    impl->config.chat_template = read_file(template_path);
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json,
                               std::string_view tokenizer_config_json, const std::string& origin) {
  return Tokenizer(
      build(tokenizer_json, tokenizer_config_json, origin, origin + " (tokenizer_config.json)"));
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens,
                                       bool parse_special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  impl_->encode(text, add_special_tokens, parse_special, ids);
  return ids;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string out;
  out.reserve(ids.size() * 4);
  detail::DecodeState state(*impl_, skip_special_tokens);
  for (int32_t id : ids) state.push(id, out);
  state.finish(out);
  return out;
}

int32_t Tokenizer::token_to_id(std::string_view token) const {
  int32_t id = impl_->added_ids.find(token);
  return id >= 0 ? id : impl_->model->token_to_id(token);
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (!impl_->known(id))
    fail_input("token id {} is not in the vocabulary of {} ({} ids)", id, impl_->origin,
               impl_->vocab_size);
  return impl_->token_string(id);
}

size_t Tokenizer::vocab_size() const {
  return impl_->vocab_size;
}
const TokenizerConfig& Tokenizer::config() const {
  return impl_->config;
}
bool Tokenizer::is_special(int32_t id) const {
  return impl_->is_special(id);
}

}  // namespace hwledger::tokenizer
