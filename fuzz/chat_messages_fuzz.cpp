// libFuzzer target for the preparation of client chat messages (sched/model_context.h,
// messages_for_template): the input is JSON (an OpenAI `messages` array, arbitrary otherwise).
// It must end in messages a template renders, or an InputError: never a crash.
#include <cstddef>
#include <cstdint>

#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "sched/model_context.h"
#include "util/error.h"

namespace {

const hwledger::chat::ChatTemplate& chat_template() {
  // ChatML plus the tool-call printing that needs parsed arguments.
  static const hwledger::chat::ChatTemplate tmpl(
      "{%- for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}"
      "{%- for c in m.tool_calls or [] %}<tool_call>{{ c.function.arguments | tojson }}</tool_call>"
      "{%- endfor %}<|im_end|>\n{%- endfor %}");
  return tmpl;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto messages = nlohmann::ordered_json::parse(data, data + size, nullptr, false);
  if (messages.is_discarded()) return 0;
  try {
    auto prepared = hwledger::messages_for_template(messages);
    hwledger::chat::render_chat_ordered(chat_template(), prepared, nullptr, true, "", "<|im_end|>");
  } catch (const hwledger::InputError&) {
  }
  return 0;
}
