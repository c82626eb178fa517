#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include <new>

#include "util/error.h"

namespace hwledger::tokenizer {

struct Regex::Code {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Code() { pcre2_code_free(code); }
};

namespace {

// Match data holds only the overall match (our patterns use no capture groups that matter);
// one per thread, with a JIT stack that may grow to 1 MiB (the default 32 KiB on the machine
// stack could run out on a pathological pattern from a tokenizer.json), so concurrent encodes
// share the compiled pattern and nothing else.
struct ThreadMatchState {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, nullptr);
  ThreadMatchState() {
    if (data == nullptr || context == nullptr) throw std::bad_alloc();
    if (stack != nullptr) pcre2_jit_stack_assign(context, nullptr, stack);
  }
  ~ThreadMatchState() {
    pcre2_jit_stack_free(stack);
    pcre2_match_context_free(context);
    pcre2_match_data_free(data);
  }
};

ThreadMatchState& thread_match_state() {
  thread_local ThreadMatchState state;
  return state;
}

}  // namespace

Regex::Regex(std::string_view pattern, const std::string& what, bool literal) : pattern_(pattern) {
  int error_code = 0;
  PCRE2_SIZE error_offset = 0;
  // PCRE2_LITERAL does not combine with PCRE2_UCP (nor needs it).
  uint32_t options = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   options, &error_code, &error_offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error_code, message, sizeof(message));
    fail_input("{}: bad regex '{}': {} at offset {}", what, pattern,
               reinterpret_cast<const char*>(message), error_offset);
  }
  auto holder = std::make_shared<Code>();
  holder->code = code;
  holder->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  code_ = std::move(holder);
}

bool Regex::find(std::string_view subject, size_t start, size_t& begin, size_t& end) const {
  ThreadMatchState& state = thread_match_state();
  pcre2_match_data* match = state.data;
  auto* text = reinterpret_cast<PCRE2_SPTR>(subject.data());
  int rc = code_->jit
               ? pcre2_jit_match(code_->code, text, subject.size(), start, 0, match, state.context)
               : pcre2_match(code_->code, text, subject.size(), start, PCRE2_NO_UTF_CHECK, match,
                             state.context);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  // rc == 0 means the ovector had no room for the groups; the overall match is still there.
  if (rc < 0) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(rc, message, sizeof(message));
    fail_input("regex '{}' failed on a {}-byte text: {}", pattern_, subject.size(),
               reinterpret_cast<const char*>(message));
  }
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
  begin = ovector[0];
  end = ovector[1];
  return true;
}

}  // namespace hwledger::tokenizer
