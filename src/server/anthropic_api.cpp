// Anthropic-compatible routes: /v1/messages and /v1/messages/count_tokens.
#include <fmt/format.h>

#include <map>

#include "server/api.h"

namespace hwledger::server {

namespace {

std::string text_of_blocks(const Json& content, const std::string& field) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array())
    throw_type_error(field, "a string or an array of content blocks", content);
  std::string text;
  for (size_t b = 0; b < content.size(); ++b) {
    const Json& block = content[b];
    const std::string name = field_name(field, b);
    if (!block.is_object()) throw_type_error(name, "a content block object", block);
    const std::string type = get_string(block, "type", name).value_or("");
    if (type != "text")
      throw_invalid(fmt::format("'{}' is a {} block; only text blocks are supported here", name,
                                Json(type).dump()),
                    name + ".type");
    auto t = get_string(block, "text", name);
    if (!t) throw_missing(name + ".text", "a string");
    if (!text.empty()) text += '\n';
    text += *t;
  }
  return text;
}

// Anthropic messages (and system) -> the OpenAI-shape messages chat templates are written for:
// tool_use blocks become an assistant's tool_calls, tool_result blocks become "tool" messages.
Json template_messages(const Json& body) {
  Json out = Json::array();
  if (auto system = body.find("system"); system != body.end() && !system->is_null()) {
    const std::string text = text_of_blocks(*system, "system");
    if (!text.empty()) out.push_back({{"role", "system"}, {"content", text}});
  }
  const Json* messages = get_array(body, "messages");
  if (!messages) throw_missing("messages", "an array of messages");
  if (messages->empty())
    throw_invalid("'messages' is empty; at least one message is required", "messages");
  std::map<std::string, std::string> tool_names;  // tool_use id -> name
  for (size_t i = 0; i < messages->size(); ++i) {
    const Json& m = (*messages)[i];
    const std::string name = field_name("messages", i);
    if (!m.is_object()) throw_type_error(name, "a message object", m);
    auto role = get_string(m, "role", name);
    if (!role) throw_missing(name + ".role", "\"user\" or \"assistant\"");
    if (*role != "user" && *role != "assistant")
      throw_invalid(fmt::format("'{}.role' must be \"user\" or \"assistant\", got {}", name,
                                Json(*role).dump()),
                    name + ".role");
    auto content_it = m.find("content");
    if (content_it == m.end() || content_it->is_null())
      throw_missing(name + ".content", "a string or an array of content blocks");
    const Json& content = *content_it;
    if (content.is_string()) {
      out.push_back({{"role", *role}, {"content", content.get<std::string>()}});
      continue;
    }
    if (!content.is_array())
      throw_type_error(name + ".content", "a string or an array of content blocks", content);

    std::string text;
    Json tool_calls = Json::array();
    for (size_t b = 0; b < content.size(); ++b) {
      const Json& block = content[b];
      const std::string bname = field_name(name + ".content", b);
      if (!block.is_object()) throw_type_error(bname, "a content block object", block);
      auto type = get_string(block, "type", bname);
      if (!type) throw_missing(bname + ".type", "\"text\", \"tool_use\" or \"tool_result\"");
      if (*type == "text") {
        auto t = get_string(block, "text", bname);
        if (!t) throw_missing(bname + ".text", "a string");
        if (!text.empty()) text += '\n';
        text += *t;
      } else if (*type == "tool_use") {
        if (*role != "assistant")
          throw_invalid(fmt::format("'{}': tool_use blocks belong in assistant messages", bname),
                        bname);
        auto id = get_string(block, "id", bname);
        auto tname = get_string(block, "name", bname);
        if (!id) throw_missing(bname + ".id", "a string");
        if (!tname) throw_missing(bname + ".name", "a string");
        const Json* input = get_object(block, "input", bname);
        tool_names[*id] = *tname;
        tool_calls.push_back(
            {{"id", *id},
             {"type", "function"},
             {"function", {{"name", *tname}, {"arguments", input ? *input : Json::object()}}}});
      } else if (*type == "tool_result") {
        if (*role != "user")
          throw_invalid(fmt::format("'{}': tool_result blocks belong in user messages", bname),
                        bname);
        auto id = get_string(block, "tool_use_id", bname);
        if (!id) throw_missing(bname + ".tool_use_id", "the id of the tool_use block this answers");
        std::string result;
        if (auto c = block.find("content"); c != block.end() && !c->is_null())
          result = text_of_blocks(*c, bname + ".content");
        if (get_bool(block, "is_error", bname).value_or(false)) result = "Error: " + result;
        Json tool = {{"role", "tool"}, {"tool_call_id", *id}, {"content", result}};
        if (tool_names.count(*id)) tool["name"] = tool_names[*id];
        out.push_back(std::move(tool));
      } else if (*type == "thinking" || *type == "redacted_thinking") {
        continue;  // earlier turns' reasoning is not shown to the model again
      } else {
        throw_invalid(
            fmt::format(
                "'{}' is a {} block, which this server does not support (text, tool_use and "
                "tool_result only)",
                bname, Json(*type).dump()),
            bname + ".type");
      }
    }
    if (*role == "assistant") {
      Json msg = {{"role", "assistant"}, {"content", text}};
      if (!tool_calls.empty()) msg["tool_calls"] = std::move(tool_calls);
      out.push_back(std::move(msg));
    } else if (!text.empty()) {
      out.push_back({{"role", "user"}, {"content", text}});
    }
  }
  return out;
}

// Anthropic tools -> OpenAI function tools (what chat templates render); null when there are
// none or tool_choice is {"type": "none"}.
Json template_tools(const Json& body, ToolChoice& choice_out) {
  const Json* tools = get_array(body, "tools");
  if (!tools || tools->empty()) return nullptr;
  Json out = Json::array();
  std::vector<std::string> names;
  for (size_t i = 0; i < tools->size(); ++i) {
    const Json& tool = (*tools)[i];
    const std::string name = field_name("tools", i);
    if (!tool.is_object()) throw_type_error(name, "a tool object", tool);
    const std::string type = get_string(tool, "type", name).value_or("custom");
    if (type != "custom")
      throw_invalid(
          fmt::format("'{}.type' {} is not supported; only client tools (with input_schema) are",
                      name, Json(type).dump()),
          name + ".type");
    auto tname = get_string(tool, "name", name);
    if (!tname) throw_missing(name + ".name", "a string");
    const Json* schema = get_object(tool, "input_schema", name);
    if (!schema) throw_missing(name + ".input_schema", "a JSON schema object");
    Json fn = {{"name", *tname}};
    if (auto d = get_string(tool, "description", name)) fn["description"] = *d;
    fn["parameters"] = *schema;
    out.push_back({{"type", "function"}, {"function", std::move(fn)}});
    names.push_back(*tname);
  }
  choice_out.names = names;
  if (const Json* choice = get_object(body, "tool_choice")) {
    auto type = get_string(*choice, "type", "tool_choice");
    if (!type) throw_missing("tool_choice.type", "\"auto\", \"any\", \"tool\" or \"none\"");
    if (*type == "none") return nullptr;
    if (*type == "tool") {
      auto tname = get_string(*choice, "name", "tool_choice");
      if (!tname) throw_missing("tool_choice.name", "the name of one of the tools");
      if (std::find(names.begin(), names.end(), *tname) == names.end())
        throw_invalid(
            fmt::format("'tool_choice.name' {} is not among the tools", Json(*tname).dump()),
            "tool_choice.name");
      choice_out.mode = ToolChoice::Mode::Named;
      choice_out.name = *tname;
    } else if (*type == "any") {
      choice_out.mode = ToolChoice::Mode::Required;
    } else if (*type != "auto") {
      throw_invalid(
          fmt::format("'tool_choice.type' must be \"auto\", \"any\", \"tool\" or \"none\", got {}",
                      Json(*type).dump()),
          "tool_choice.type");
    }
  }
  return out;
}

std::string model_of(const Json& body, const ServingBackend& backend) {
  auto model = get_string(body, "model");
  if (!model)
    throw_missing("model", fmt::format("the served model's name, \"{}\"", backend.model_name()));
  check_model(*model, backend);
  return *model;
}

Json usage_json(const GenerateResult& r) {
  // Anthropic counts cache reads apart: input_tokens are the prompt tokens computed afresh.
  return {{"input_tokens", r.prompt_tokens - r.cached_tokens},
          {"cache_creation_input_tokens", 0},
          {"cache_read_input_tokens", r.cached_tokens},
          {"output_tokens", r.completion_tokens}};
}

class MessagesExchange final : public Exchange {
 public:
  MessagesExchange(const Json& body, const ServingBackend& backend) {
    model_ = model_of(body, backend);
    require_tokenizer(backend);
    auto max_tokens = get_integer(body, "max_tokens");
    if (!max_tokens) throw_missing("max_tokens", "the most tokens to generate, an integer");
    plan_.stream = get_bool(body, "stream").value_or(false);
    SamplingParams& s = plan_.request.sampling;
    s.temperature = static_cast<float>(get_number(body, "temperature").value_or(1.0));
    check_range(s.temperature, 0, 1, "temperature");
    if (auto top_p = get_number(body, "top_p")) {
      if (!(*top_p > 0 && *top_p <= 1))
        throw_invalid(fmt::format("'top_p' must be greater than 0 and at most 1, got {}", *top_p),
                      "top_p");
      s.top_p = static_cast<float>(*top_p);
    }
    if (auto top_k = get_integer(body, "top_k")) {
      if (*top_k < 0)
        throw_invalid(fmt::format("'top_k' must be 0 (off) or positive, got {}", *top_k), "top_k");
      s.top_k = static_cast<int32_t>(std::min<int64_t>(*top_k, INT32_MAX));
    }
    plan_.stop_strings = parse_stop_strings(body, "stop_sequences");
    ToolChoice choice;
    const Json tools = template_tools(body, choice);
    plan_chat_prompt(plan_, backend, template_messages(body), tools, choice, Json::object());
    fit_context(plan_, backend, max_tokens, "max_tokens", "messages");
    plan_.request.stop_token_ids = backend.stop_token_ids();
  }

  ApiFlavor flavor() const override { return ApiFlavor::Anthropic; }
  const GenerationPlan& plan() const override { return plan_; }
  std::string tool_id_prefix() const override { return "toolu_"; }

  std::string stream_start() override {
    Json message;
    message["id"] = id_;
    message["type"] = "message";
    message["role"] = "assistant";
    message["model"] = model_;
    message["content"] = Json::array();
    message["stop_reason"] = nullptr;
    message["stop_sequence"] = nullptr;
    // Cache reads are known only at the end: message_delta carries the final usage.
    message["usage"] = {{"input_tokens", plan_.request.prompt.size()},
                        {"cache_creation_input_tokens", 0},
                        {"cache_read_input_tokens", 0},
                        {"output_tokens", 0}};
    return sse_event("message_start",
                     {{"type", "message_start"}, {"message", std::move(message)}}) +
           stream_ping();
  }

  std::string stream_events(const std::vector<OutputEvent>& events, const Reply&) override {
    std::string out, text;
    auto flush_text = [&] {
      if (text.empty()) return;
      if (open_ != Block::Text) {
        close_block(out);
        out +=
            sse_event("content_block_start", {{"type", "content_block_start"},
                                              {"index", index_},
                                              {"content_block", {{"type", "text"}, {"text", ""}}}});
        open_ = Block::Text;
      }
      out +=
          sse_event("content_block_delta", {{"type", "content_block_delta"},
                                            {"index", index_},
                                            {"delta", {{"type", "text_delta"}, {"text", text}}}});
      text.clear();
    };
    for (const OutputEvent& e : events) {
      switch (e.kind) {
        case OutputEvent::Kind::Content:
          text += e.text;
          break;
        case OutputEvent::Kind::ToolStart:
          flush_text();
          close_block(out);
          out += sse_event("content_block_start", {{"type", "content_block_start"},
                                                   {"index", index_},
                                                   {"content_block",
                                                    {{"type", "tool_use"},
                                                     {"id", e.id},
                                                     {"name", e.text},
                                                     {"input", Json::object()}}}});
          open_ = Block::ToolUse;
          break;
        case OutputEvent::Kind::ToolArguments:
          flush_text();
          if (open_ == Block::ToolUse)
            out += sse_event("content_block_delta",
                             {{"type", "content_block_delta"},
                              {"index", index_},
                              {"delta", {{"type", "input_json_delta"}, {"partial_json", e.text}}}});
          break;
        case OutputEvent::Kind::ToolEnd:
          flush_text();
          close_block(out);
          break;
        case OutputEvent::Kind::Logprob:
          break;
      }
    }
    flush_text();
    return out;
  }

  std::string stream_end(const Reply& reply) override {
    std::string out;
    close_block(out);
    Json delta = {{"stop_reason", stop_reason(reply)}, {"stop_sequence", stop_sequence(reply)}};
    out += sse_event(
        "message_delta",
        {{"type", "message_delta"}, {"delta", delta}, {"usage", usage_json(reply.result())}});
    out += sse_event("message_stop", {{"type", "message_stop"}});
    return out;
  }

  std::string stream_ping() override { return sse_event("ping", {{"type", "ping"}}); }

  std::string stream_error(const ApiError& error) override {
    return "event: error\ndata: " + error_body(error, ApiFlavor::Anthropic) + "\n\n";
  }

  std::string response_body(const Reply& reply) override {
    Json content = Json::array();
    if (!reply.content().empty()) content.push_back({{"type", "text"}, {"text", reply.content()}});
    for (const ToolCallOut& call : reply.tool_calls()) {
      Json input = Json::parse(call.arguments, nullptr, false);
      if (input.is_discarded() || !input.is_object()) input = Json::object();
      content.push_back({{"type", "tool_use"},
                         {"id", call.id},
                         {"name", call.name},
                         {"input", std::move(input)}});
    }
    Json body;
    body["id"] = id_;
    body["type"] = "message";
    body["role"] = "assistant";
    body["model"] = model_;
    body["content"] = std::move(content);
    body["stop_reason"] = stop_reason(reply);
    body["stop_sequence"] = stop_sequence(reply);
    body["usage"] = usage_json(reply.result());
    return dump(body);
  }

 private:
  enum class Block { None, Text, ToolUse };

  void close_block(std::string& out) {
    if (open_ == Block::None) return;
    out += sse_event("content_block_stop", {{"type", "content_block_stop"}, {"index", index_}});
    ++index_;
    open_ = Block::None;
  }

  static std::string stop_reason(const Reply& reply) {
    switch (reply.result().reason) {
      case StopReason::Eos:
        return reply.tool_calls().empty() ? "end_turn" : "tool_use";
      case StopReason::Stop:
        return reply.stop_sequence().empty() ? "end_turn" : "stop_sequence";
      default:
        return "max_tokens";
    }
  }

  static Json stop_sequence(const Reply& reply) {
    if (reply.result().reason == StopReason::Stop && !reply.stop_sequence().empty())
      return reply.stop_sequence();
    return nullptr;
  }

  GenerationPlan plan_;
  std::string id_ = random_id("msg_");
  std::string model_;
  Block open_ = Block::None;
  int index_ = 0;
};

}  // namespace

std::unique_ptr<Exchange> anthropic_messages_exchange(const Json& body,
                                                      const ServingBackend& backend) {
  return std::make_unique<MessagesExchange>(body, backend);
}

std::string anthropic_count_tokens_body(const Json& body, const ServingBackend& backend) {
  model_of(body, backend);
  // The same prompt /v1/messages would run, a forced tool call's opening included.
  GenerationPlan plan;
  ToolChoice choice;
  const Json tools = template_tools(body, choice);
  plan_chat_prompt(plan, backend, template_messages(body), tools, choice, Json::object());
  return dump({{"input_tokens", plan.request.prompt.size()}});
}

}  // namespace hwledger::server
