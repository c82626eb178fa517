// OpenAI-compatible routes: /v1/models, /v1/chat/completions, /v1/completions.
#include <fmt/format.h>

#include <map>
#include <set>

#include "server/api.h"
#include "tokenizer/tokenizer.h"

namespace hwledger::server {

namespace {

void parse_sampling(const Json& body, SamplingParams& s) {
  s.temperature = static_cast<float>(get_number(body, "temperature").value_or(1.0));
  check_range(s.temperature, 0, 2, "temperature");
  if (auto top_p = get_number(body, "top_p")) {
    if (!(*top_p > 0 && *top_p <= 1))
      throw ApiError(ErrorKind::InvalidRequest,
                     fmt::format("'top_p' must be greater than 0 and at most 1, got {}", *top_p),
                     "top_p", "invalid_value");
    s.top_p = static_cast<float>(*top_p);
  }
  if (auto top_k = get_integer(body, "top_k")) {  // vLLM's extension; -1 and 0 mean off
    if (*top_k < -1)
      throw_invalid(fmt::format("'top_k' must be -1, 0 (off) or positive, got {}", *top_k),
                    "top_k");
    s.top_k = static_cast<int32_t>(std::max<int64_t>(0, std::min<int64_t>(*top_k, INT32_MAX)));
  }
  if (auto min_p = get_number(body, "min_p")) {
    check_range(*min_p, 0, 1, "min_p");
    s.min_p = static_cast<float>(*min_p);
  }
  if (auto rp = get_number(body, "repetition_penalty")) {
    if (!(*rp > 0 && *rp <= 10))
      throw_invalid(
          fmt::format("'repetition_penalty' must be greater than 0 and at most 10, got {}", *rp),
          "repetition_penalty");
    s.repetition_penalty = static_cast<float>(*rp);
  }
  if (auto pp = get_number(body, "presence_penalty")) {
    check_range(*pp, -2, 2, "presence_penalty");
    s.presence_penalty = static_cast<float>(*pp);
  }
  if (auto fp = get_number(body, "frequency_penalty")) {
    check_range(*fp, -2, 2, "frequency_penalty");
    s.frequency_penalty = static_cast<float>(*fp);
  }
  if (auto seed = get_integer(body, "seed")) s.seed = static_cast<uint64_t>(*seed);
}

// Fields this server does not do; silently ignoring them would change what the client gets.
void refuse_unsupported(const Json& body) {
  if (auto n = get_integer(body, "n"); n && *n != 1)
    throw_invalid(
        fmt::format("'n' must be 1 (this server returns one choice per request), got {}", *n), "n");
  if (auto best_of = get_integer(body, "best_of"); best_of && *best_of != 1)
    throw_invalid(fmt::format("'best_of' must be 1, got {}", *best_of), "best_of");
  if (const Json* rf = get_object(body, "response_format")) {
    const std::string type = get_string(*rf, "type", "response_format").value_or("text");
    if (type != "text")
      throw_invalid(
          fmt::format(
              "'response_format.type' {} is not supported (no constrained decoding); use \"text\"",
              Json(type).dump()),
          "response_format");
  }
  if (const Json* bias = get_object(body, "logit_bias"); bias && !bias->empty())
    throw_invalid("'logit_bias' is not supported by this server", "logit_bias");
}

std::optional<int64_t> max_tokens_of(const Json& body, std::string& field) {
  if (auto v = get_integer(body, "max_completion_tokens")) {
    field = "max_completion_tokens";
    return v;
  }
  field = "max_tokens";
  return get_integer(body, "max_tokens");
}

bool include_usage(const Json& body) {
  const Json* options = get_object(body, "stream_options");
  return options && get_bool(*options, "include_usage", "stream_options").value_or(false);
}

std::string model_of(const Json& body, const ServingBackend& backend) {
  auto model = get_string(body, "model");
  if (!model)
    throw_missing("model", fmt::format("the served model's name, \"{}\"", backend.model_name()));
  check_model(*model, backend);
  return *model;
}

Json usage_json(const GenerateResult& r) {
  Json usage;
  usage["prompt_tokens"] = r.prompt_tokens;
  usage["completion_tokens"] = r.completion_tokens;
  usage["total_tokens"] = r.prompt_tokens + r.completion_tokens;
  usage["prompt_tokens_details"] = {{"cached_tokens", r.cached_tokens}};
  return usage;
}

Json bytes_of(const std::string& s) {
  Json bytes = Json::array();
  for (unsigned char c : s) bytes.push_back(static_cast<int>(c));
  return bytes;
}

Json chat_logprob(const TokenLogprob& lp) {
  Json top = Json::array();
  for (const auto& [token, value] : lp.top)
    top.push_back({{"token", token}, {"logprob", value}, {"bytes", bytes_of(token)}});
  return {{"token", lp.token},
          {"logprob", lp.logprob},
          {"bytes", bytes_of(lp.token)},
          {"top_logprobs", std::move(top)}};
}

std::string finish_reason(const Reply& reply) {
  switch (reply.result().reason) {
    case StopReason::Eos:
    case StopReason::Stop:
      return reply.tool_calls().empty() ? "stop" : "tool_calls";
    default:
      return "length";  // max_tokens, or cut short (the server shutting down)
  }
}

// ---- chat messages -> the template's messages ------------------------------------------------

Json template_messages(const Json& messages) {
  static const std::set<std::string> kRoles = {"system",    "developer", "user",
                                               "assistant", "tool",      "function"};
  Json out = Json::array();
  std::map<std::string, std::string> call_names;  // tool_call_id -> function name
  for (size_t i = 0; i < messages.size(); ++i) {
    const Json& m = messages[i];
    const std::string name = field_name("messages", i);
    if (!m.is_object()) throw_type_error(name, "a message object", m);
    auto role = get_string(m, "role", name);
    if (!role) throw_missing(name + ".role", "one of system, developer, user, assistant, tool");
    if (!kRoles.count(*role))
      throw_invalid(
          fmt::format("'{}.role' must be one of system, developer, user, assistant, tool; got {}",
                      name, Json(*role).dump()),
          name + ".role");
    Json t = Json::object();
    t["role"] = *role == "developer" ? "system" : *role == "function" ? "tool" : *role;
    auto content_it = m.find("content");
    if ((content_it == m.end() || content_it->is_null()) && *role != "assistant")
      throw_missing(name + ".content", "a string or an array of content parts");
    t["content"] =
        content_it == m.end() ? std::string() : content_text(*content_it, name + ".content");
    if (auto n = get_string(m, "name", name)) t["name"] = *n;

    if (*role == "assistant") {
      if (const Json* calls = get_array(m, "tool_calls", name)) {
        Json converted = Json::array();
        for (size_t j = 0; j < calls->size(); ++j) {
          const Json& call = (*calls)[j];
          const std::string cname = field_name(name + ".tool_calls", j);
          if (!call.is_object()) throw_type_error(cname, "a tool call object", call);
          const Json* fn = get_object(call, "function", cname);
          if (!fn) throw_missing(cname + ".function", "an object with name and arguments");
          auto fname = get_string(*fn, "name", cname + ".function");
          if (!fname) throw_missing(cname + ".function.name", "a string");
          const std::string id =
              get_string(call, "id", cname).value_or(fmt::format("call_{}_{}", i, j));
          Json arguments = Json::object();
          if (auto args = fn->find("arguments"); args != fn->end() && !args->is_null()) {
            if (args->is_string()) {
              // Templates print arguments with tojson: give them the object, not its text.
              Json parsed = Json::parse(args->get<std::string>(), nullptr, false);
              arguments = parsed.is_discarded() ? *args : parsed;
            } else if (args->is_object()) {
              arguments = *args;
            } else {
              throw_type_error(cname + ".function.arguments", "a string of JSON", *args);
            }
          }
          call_names[id] = *fname;
          converted.push_back({{"id", id},
                               {"type", "function"},
                               {"function", {{"name", *fname}, {"arguments", arguments}}}});
        }
        if (!converted.empty()) t["tool_calls"] = std::move(converted);
      }
    }
    if (t["role"] == "tool") {
      if (auto id = get_string(m, "tool_call_id", name)) {
        t["tool_call_id"] = *id;
        if (!t.contains("name") && call_names.count(*id)) t["name"] = call_names[*id];
      }
    }
    out.push_back(std::move(t));
  }
  return out;
}

// Validates `tools` (function tools only) and `tool_choice` (into `choice`); returns the tools
// the template should see (null when there are none or tool_choice is "none").
Json offered_tools(const Json& body, ToolChoice& choice_out) {
  const Json* tools = get_array(body, "tools");
  if (!tools || tools->empty()) return nullptr;
  std::set<std::string> names;
  for (size_t i = 0; i < tools->size(); ++i) {
    const Json& tool = (*tools)[i];
    const std::string name = field_name("tools", i);
    if (!tool.is_object()) throw_type_error(name, "a tool object", tool);
    const std::string type = get_string(tool, "type", name).value_or("function");
    if (type != "function")
      throw_invalid(fmt::format("'{}.type' {} is not supported; only \"function\" tools are", name,
                                Json(type).dump()),
                    name + ".type");
    const Json* fn = get_object(tool, "function", name);
    if (!fn) throw_missing(name + ".function", "an object with name, description and parameters");
    auto fname = get_string(*fn, "name", name + ".function");
    if (!fname) throw_missing(name + ".function.name", "a string");
    get_object(*fn, "parameters", name + ".function");
    names.insert(*fname);
    choice_out.names.push_back(*fname);
  }
  auto choice = body.find("tool_choice");
  if (choice != body.end() && !choice->is_null()) {
    if (choice->is_string()) {
      const std::string c = choice->get<std::string>();
      if (c == "none") return nullptr;
      if (c == "required") choice_out.mode = ToolChoice::Mode::Required;
      if (c != "auto" && c != "required")
        throw_invalid(
            fmt::format(
                "'tool_choice' must be \"none\", \"auto\", \"required\" or a function, got {}",
                choice->dump()),
            "tool_choice");
    } else if (choice->is_object()) {
      const Json* fn = get_object(*choice, "function", "tool_choice");
      auto fname = fn ? get_string(*fn, "name", "tool_choice.function") : std::nullopt;
      if (!fname) throw_missing("tool_choice.function.name", "the name of one of the tools");
      if (!names.count(*fname))
        throw_invalid(
            fmt::format("'tool_choice' names the function {}, which is not among the tools",
                        Json(*fname).dump()),
            "tool_choice");
      choice_out.mode = ToolChoice::Mode::Named;
      choice_out.name = *fname;
    } else {
      throw_type_error("tool_choice", "a string or an object", *choice);
    }
  }
  return *tools;
}

// ---- chat completions ------------------------------------------------------------------------

class ChatExchange final : public Exchange {
 public:
  ChatExchange(const Json& body, const ServingBackend& backend) {
    model_ = model_of(body, backend);
    const tokenizer::Tokenizer& tok = require_tokenizer(backend);
    (void)tok;
    const Json* messages = get_array(body, "messages");
    if (!messages) throw_missing("messages", "an array of messages");
    if (messages->empty())
      throw_invalid("'messages' is empty; at least one message is required", "messages");
    refuse_unsupported(body);
    plan_.stream = get_bool(body, "stream").value_or(false);
    include_usage_ = include_usage(body);
    plan_.want_logprobs = get_bool(body, "logprobs").value_or(false);
    if (auto top = get_integer(body, "top_logprobs")) {
      if (*top < 0 || *top > 20)
        throw_invalid(fmt::format("'top_logprobs' must be between 0 and 20, got {}", *top),
                      "top_logprobs");
      if (!plan_.want_logprobs)
        throw_invalid("'top_logprobs' needs 'logprobs': true", "top_logprobs");
      plan_.request.sampling.top_logprobs = static_cast<int32_t>(*top);
    } else if (plan_.want_logprobs) {
      plan_.request.sampling.top_logprobs = 0;
    }
    parse_sampling(body, plan_.request.sampling);
    plan_.stop_strings = parse_stop_strings(body, "stop");

    ToolChoice choice;
    const Json tools = offered_tools(body, choice);
    Json extra = Json::object();
    if (const Json* kwargs = get_object(body, "chat_template_kwargs")) extra = *kwargs;
    plan_chat_prompt(plan_, backend, template_messages(*messages), tools, choice, extra);

    std::string max_field;
    const auto max_tokens = max_tokens_of(body, max_field);
    fit_context(plan_, backend, max_tokens, max_field, "messages");
    plan_.request.stop_token_ids = backend.stop_token_ids();
  }

  ApiFlavor flavor() const override { return ApiFlavor::OpenAI; }
  const GenerationPlan& plan() const override { return plan_; }
  std::string tool_id_prefix() const override { return "call_"; }

  std::string stream_start() override {
    return chunk({{"role", "assistant"}, {"content", ""}}, nullptr, nullptr);
  }

  std::string stream_events(const std::vector<OutputEvent>& events, const Reply&) override {
    std::string out, content;
    Json logprobs = Json::array();
    auto flush = [&] {
      if (content.empty() && logprobs.empty()) return;
      out += chunk({{"content", content}},
                   logprobs.empty() ? Json() : Json{{"content", logprobs}, {"refusal", nullptr}},
                   nullptr);
      content.clear();
      logprobs = Json::array();
    };
    for (const OutputEvent& e : events) {
      switch (e.kind) {
        case OutputEvent::Kind::Content:
          content += e.text;
          break;
        case OutputEvent::Kind::Logprob:
          logprobs.push_back(chat_logprob(e.logprob));
          break;
        case OutputEvent::Kind::ToolStart:
          flush();
          out += chunk({{"tool_calls",
                         {{{"index", e.index},
                           {"id", e.id},
                           {"type", "function"},
                           {"function", {{"name", e.text}, {"arguments", ""}}}}}}},
                       nullptr, nullptr);
          break;
        case OutputEvent::Kind::ToolArguments:
          flush();
          out +=
              chunk({{"tool_calls", {{{"index", e.index}, {"function", {{"arguments", e.text}}}}}}},
                    nullptr, nullptr);
          break;
        case OutputEvent::Kind::ToolEnd:
          break;
      }
    }
    flush();
    return out;
  }

  std::string stream_end(const Reply& reply) override {
    std::string out = chunk(Json::object(), nullptr, finish_reason(reply));
    if (include_usage_) {
      Json last = base();
      last["choices"] = Json::array();
      last["usage"] = usage_json(reply.result());
      out += sse_data(last);
    }
    return out + "data: [DONE]\n\n";
  }

  std::string stream_ping() override { return ": keep-alive\n\n"; }

  std::string stream_error(const ApiError& error) override {
    return "data: " + error_body(error, ApiFlavor::OpenAI) + "\n\ndata: [DONE]\n\n";
  }

  std::string response_body(const Reply& reply) override {
    Json message;
    message["role"] = "assistant";
    const bool has_calls = !reply.tool_calls().empty();
    if (has_calls && reply.content().empty())
      message["content"] = nullptr;
    else
      message["content"] = reply.content();
    message["refusal"] = nullptr;
    if (has_calls) {
      Json calls = Json::array();
      for (const ToolCallOut& c : reply.tool_calls())
        calls.push_back({{"id", c.id},
                         {"type", "function"},
                         {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
      message["tool_calls"] = std::move(calls);
    }
    Json choice;
    choice["index"] = 0;
    choice["message"] = std::move(message);
    if (plan_.want_logprobs) {
      Json content = Json::array();
      for (const TokenLogprob& lp : reply.logprobs()) content.push_back(chat_logprob(lp));
      choice["logprobs"] = {{"content", std::move(content)}, {"refusal", nullptr}};
    } else {
      choice["logprobs"] = nullptr;
    }
    choice["finish_reason"] = finish_reason(reply);
    Json body;
    body["id"] = id_;
    body["object"] = "chat.completion";
    body["created"] = created_;
    body["model"] = model_;
    body["choices"] = Json::array({std::move(choice)});
    body["usage"] = usage_json(reply.result());
    body["system_fingerprint"] = "hwledger";
    return dump(body);
  }

 private:
  Json base() const {
    Json c;
    c["id"] = id_;
    c["object"] = "chat.completion.chunk";
    c["created"] = created_;
    c["model"] = model_;
    c["system_fingerprint"] = "hwledger";
    return c;
  }

  std::string chunk(Json delta, Json logprobs, Json finish) const {
    Json c = base();
    Json choice;
    choice["index"] = 0;
    choice["delta"] = std::move(delta);
    choice["logprobs"] = std::move(logprobs);
    choice["finish_reason"] = std::move(finish);
    c["choices"] = Json::array({std::move(choice)});
    if (include_usage_) c["usage"] = nullptr;
    return sse_data(c);
  }

  GenerationPlan plan_;
  std::string id_ = random_id("chatcmpl-");
  int64_t created_ = unix_now();
  std::string model_;
  bool include_usage_ = false;
};

// ---- legacy completions ----------------------------------------------------------------------

class CompletionExchange final : public Exchange {
 public:
  CompletionExchange(const Json& body, const ServingBackend& backend) {
    model_ = model_of(body, backend);
    const tokenizer::Tokenizer& tok = require_tokenizer(backend);
    refuse_unsupported(body);
    if (auto suffix = get_string(body, "suffix"); suffix && !suffix->empty())
      throw_invalid("'suffix' is not supported by this server", "suffix");
    plan_.stream = get_bool(body, "stream").value_or(false);
    include_usage_ = include_usage(body);
    echo_ = get_bool(body, "echo").value_or(false);
    if (auto lp = get_integer(body, "logprobs")) {
      if (*lp < 0 || *lp > 20)
        throw_invalid(fmt::format("'logprobs' must be between 0 and 20, got {}", *lp), "logprobs");
      plan_.want_logprobs = true;
      plan_.request.sampling.top_logprobs = static_cast<int32_t>(*lp);
    }
    parse_sampling(body, plan_.request.sampling);
    plan_.stop_strings = parse_stop_strings(body, "stop");
    parse_prompt(body, backend, tok);
    std::optional<int64_t> max_tokens = get_integer(body, "max_tokens");
    if (!max_tokens) max_tokens = 16;  // OpenAI's default for completions
    fit_context(plan_, backend, max_tokens, "max_tokens", "prompt");
    plan_.request.stop_token_ids = backend.stop_token_ids();
  }

  ApiFlavor flavor() const override { return ApiFlavor::OpenAI; }
  const GenerationPlan& plan() const override { return plan_; }
  std::string tool_id_prefix() const override { return "call_"; }

  std::string stream_start() override {
    offset_ = echo_ ? prompt_text_.size() : 0;
    return echo_ && !prompt_text_.empty() ? chunk(prompt_text_, nullptr, nullptr) : "";
  }

  std::string stream_events(const std::vector<OutputEvent>& events, const Reply&) override {
    std::string text;
    std::vector<TokenLogprob> lps;
    for (const OutputEvent& e : events) {
      if (e.kind == OutputEvent::Kind::Content) text += e.text;
      if (e.kind == OutputEvent::Kind::Logprob) lps.push_back(e.logprob);
    }
    if (text.empty() && lps.empty()) return {};
    Json logprobs = plan_.want_logprobs ? legacy_logprobs(lps, offset_) : Json();
    offset_ += text.size();
    return chunk(text, std::move(logprobs), nullptr);
  }

  std::string stream_end(const Reply& reply) override {
    std::string out = chunk("", nullptr, finish_reason(reply));
    if (include_usage_) {
      Json last = base();
      last["choices"] = Json::array();
      last["usage"] = usage_json(reply.result());
      out += sse_data(last);
    }
    return out + "data: [DONE]\n\n";
  }

  std::string stream_ping() override { return ": keep-alive\n\n"; }

  std::string stream_error(const ApiError& error) override {
    return "data: " + error_body(error, ApiFlavor::OpenAI) + "\n\ndata: [DONE]\n\n";
  }

  std::string response_body(const Reply& reply) override {
    Json choice;
    const std::string prefix = echo_ ? prompt_text_ : std::string();
    choice["text"] = prefix + reply.content();
    choice["index"] = 0;
    choice["logprobs"] =
        plan_.want_logprobs ? legacy_logprobs(reply.logprobs(), prefix.size()) : Json();
    choice["finish_reason"] = finish_reason(reply);
    Json body;
    body["id"] = id_;
    body["object"] = "text_completion";
    body["created"] = created_;
    body["model"] = model_;
    body["choices"] = Json::array({std::move(choice)});
    body["usage"] = usage_json(reply.result());
    body["system_fingerprint"] = "hwledger";
    return dump(body);
  }

 private:
  void parse_prompt(const Json& body, const ServingBackend& backend,
                    const tokenizer::Tokenizer& tok) {
    auto it = body.find("prompt");
    if (it == body.end() || it->is_null())
      throw_missing("prompt", "a string or an array of token ids");
    const Json* prompt = &*it;
    if (prompt->is_array() && prompt->size() == 1 &&
        ((*prompt)[0].is_string() || (*prompt)[0].is_array()))
      prompt = &(*prompt)[0];  // one prompt in a batch of one
    if (prompt->is_string()) {
      prompt_text_ = prompt->get<std::string>();
      plan_.request.prompt = backend.encode(prompt_text_, /*add_special_tokens=*/true);
      return;
    }
    if (!prompt->is_array())
      throw_type_error("prompt", "a string or an array of token ids", *prompt);
    if (!prompt->empty() && ((*prompt)[0].is_string() || (*prompt)[0].is_array()))
      throw_invalid(
          fmt::format("'prompt' holds {} prompts; this server takes one prompt per request",
                      prompt->size()),
          "prompt");
    const int64_t vocab = static_cast<int64_t>(tok.vocab_size());
    for (size_t i = 0; i < prompt->size(); ++i) {
      const Json& id = (*prompt)[i];
      if (!id.is_number_integer())
        throw_type_error(field_name("prompt", i), "a token id (an integer)", id);
      const int64_t v = id.get<int64_t>();
      if (v < 0 || v >= vocab)
        throw_invalid(
            fmt::format("'prompt[{}]' is token id {}, outside the vocabulary of {} tokens", i, v,
                        vocab),
            "prompt");
      plan_.request.prompt.push_back(static_cast<int32_t>(v));
    }
    prompt_text_ = tok.decode(plan_.request.prompt);
  }

  Json legacy_logprobs(const std::vector<TokenLogprob>& lps, size_t offset) const {
    Json tokens = Json::array(), values = Json::array(), tops = Json::array(),
         offsets = Json::array();
    for (const TokenLogprob& lp : lps) {
      tokens.push_back(lp.token);
      values.push_back(lp.logprob);
      Json top = Json::object();
      for (const auto& [t, v] : lp.top) top[t] = v;
      tops.push_back(std::move(top));
      offsets.push_back(offset);
      offset += lp.token.size();
    }
    return {{"tokens", tokens},
            {"token_logprobs", values},
            {"top_logprobs", tops},
            {"text_offset", offsets}};
  }

  Json base() const {
    Json c;
    c["id"] = id_;
    c["object"] = "text_completion";
    c["created"] = created_;
    c["model"] = model_;
    c["system_fingerprint"] = "hwledger";
    return c;
  }

  std::string chunk(const std::string& text, Json logprobs, Json finish) const {
    Json c = base();
    Json choice;
    choice["text"] = text;
    choice["index"] = 0;
    choice["logprobs"] = std::move(logprobs);
    choice["finish_reason"] = std::move(finish);
    c["choices"] = Json::array({std::move(choice)});
    if (include_usage_) c["usage"] = nullptr;
    return sse_data(c);
  }

  GenerationPlan plan_;
  std::string id_ = random_id("cmpl-");
  int64_t created_ = unix_now();
  std::string model_, prompt_text_;
  bool include_usage_ = false, echo_ = false;
  size_t offset_ = 0;
};

}  // namespace

std::unique_ptr<Exchange> openai_chat_exchange(const Json& body, const ServingBackend& backend) {
  return std::make_unique<ChatExchange>(body, backend);
}

std::unique_ptr<Exchange> openai_completion_exchange(const Json& body,
                                                     const ServingBackend& backend) {
  return std::make_unique<CompletionExchange>(body, backend);
}

namespace {
Json model_card(const ServingBackend& backend, int64_t created) {
  return {{"id", backend.model_name()},
          {"object", "model"},
          {"created", created},
          {"owned_by", "hwledger"},
          {"max_model_len", backend.context_length()}};
}
}  // namespace

std::string openai_models_body(const ServingBackend& backend, int64_t created_unix) {
  return dump({{"object", "list"}, {"data", Json::array({model_card(backend, created_unix)})}});
}

std::string openai_model_body(const ServingBackend& backend, const std::string& id,
                              int64_t created_unix) {
  check_model(id, backend);
  return dump(model_card(backend, created_unix));
}

}  // namespace hwledger::server
