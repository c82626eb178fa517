#include "server/tool_calls.h"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace hwledger::server {

namespace {

constexpr std::string_view kHermesOpen = "<tool_call>";
constexpr std::string_view kHermesClose = "</tool_call>";
constexpr std::string_view kPythonTag = "<|python_tag|>";

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool all_space(std::string_view s) {
  return std::all_of(s.begin(), s.end(), is_space);
}

// Length of the longest suffix of `text` that is a proper prefix of `tag` (text that may still
// become the tag and so must wait for the next piece).
size_t partial_tag_suffix(std::string_view text, std::string_view tag) {
  const size_t longest = std::min(text.size(), tag.size() - 1);
  for (size_t n = longest; n > 0; --n)
    if (text.substr(text.size() - n) == tag.substr(0, n)) return n;
  return 0;
}

// Finds where one JSON value ends, a character at a time.
class ValueScanner {
 public:
  enum class Step { Inside, Complete, CompleteBefore };  // CompleteBefore: `c` is not part of it

  void begin(char c) {
    depth_ = 0;
    in_string_ = escape_ = primitive_ = false;
    if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      depth_ = 1;
    } else {
      primitive_ = true;
    }
  }

  Step step(char c) {
    if (primitive_) {
      if (c == ',' || c == '}' || c == ']' || is_space(c)) return Step::CompleteBefore;
      return Step::Inside;
    }
    if (in_string_) {
      if (escape_) {
        escape_ = false;
      } else if (c == '\\') {
        escape_ = true;
      } else if (c == '"') {
        in_string_ = false;
        if (depth_ == 0) return Step::Complete;
      }
      return Step::Inside;
    }
    if (c == '"') {
      in_string_ = true;
    } else if (c == '{' || c == '[') {
      ++depth_;
    } else if (c == '}' || c == ']') {
      if (--depth_ == 0) return Step::Complete;
    }
    return Step::Inside;
  }

 private:
  int depth_ = 0;
  bool in_string_ = false, escape_ = false, primitive_ = false;
};

// Scans one call object {"name": "...", "arguments"|"parameters": {...}, ...} as it arrives.
// With the name known when the arguments object starts, the call starts at once and the
// arguments' text is passed on as it comes; otherwise the call is told whole at the end.
class CallScanner {
 public:
  enum class Status { NeedMore, Done, Failed };

  explicit CallScanner(int index) : index_(index) {}

  // Consumes from `text` (all of it unless the object ends inside: then up to its '}').
  size_t feed(std::string_view text, std::vector<ToolEvent>& out) {
    size_t i = 0;
    for (; i < text.size() && status_ == Status::NeedMore; ++i) {
      if (!step(text[i], out)) --i;  // the character ended a value and belongs to what follows
    }
    flush_arguments(out);
    return i;
  }

  Status status() const { return status_; }
  bool started() const { return started_; }

  // Ends a started call whose text stopped early (end of output, malformed JSON).
  void close(std::vector<ToolEvent>& out) {
    flush_arguments(out);
    if (started_ && !ended_) {
      out.push_back({ToolEvent::Kind::CallEnd, index_, {}});
      ended_ = true;
    }
  }

 private:
  enum class State { Start, BeforeKey, Key, Colon, ValueStart, Value, AfterValue };

  // Returns false when `c` must be looked at again in the next state.
  bool step(char c, std::vector<ToolEvent>& out) {
    switch (state_) {
      case State::Start:
        if (is_space(c)) return true;
        if (c != '{') return fail();
        state_ = State::BeforeKey;
        return true;
      case State::BeforeKey:
        if (is_space(c)) return true;
        if (c == '}') return end_object(out);
        if (c != '"') return fail();
        key_raw_ = "\"";
        key_escape_ = false;
        state_ = State::Key;
        return true;
      case State::Key:
        key_raw_ += c;
        if (key_escape_) {
          key_escape_ = false;
        } else if (c == '\\') {
          key_escape_ = true;
        } else if (c == '"') {
          auto key = nlohmann::json::parse(key_raw_, nullptr, false);
          if (key.is_discarded() || !key.is_string()) return fail();
          key_ = key.get<std::string>();
          // A first key that no call object has: ordinary JSON, not a call.
          static const char* const kCallKeys[] = {"name", "arguments", "parameters", "type", "id"};
          if (!started_ && std::none_of(std::begin(kCallKeys), std::end(kCallKeys),
                                        [&](const char* k) { return key_ == k; }))
            return fail();
          state_ = State::Colon;
        }
        return true;
      case State::Colon:
        if (is_space(c)) return true;
        if (c != ':') return fail();
        state_ = State::ValueStart;
        return true;
      case State::ValueStart: {
        if (is_space(c)) return true;
        value_.begin(c);
        in_arguments_ = key_ == "arguments" || key_ == "parameters";
        value_raw_.assign(1, c);
        streaming_ = false;
        if (in_arguments_ && (c == '{' || c == '[') && have_name_ && !started_) {
          start(out);
          streaming_ = true;
          fragment_ += c;
        }
        state_ = State::Value;
        return true;
      }
      case State::Value: {
        const ValueScanner::Step s = value_.step(c);
        if (s == ValueScanner::Step::CompleteBefore) {
          end_value();
          state_ = State::AfterValue;
          return false;
        }
        if (streaming_)
          fragment_ += c;
        else
          value_raw_ += c;
        if (s == ValueScanner::Step::Complete) {
          end_value();
          state_ = State::AfterValue;
        }
        return true;
      }
      case State::AfterValue:
        if (is_space(c)) return true;
        if (c == ',') {
          state_ = State::BeforeKey;
          return true;
        }
        if (c == '}') return end_object(out);
        return fail();
    }
    return fail();
  }

  void end_value() {
    if (key_ == "name") {
      auto name = nlohmann::json::parse(value_raw_, nullptr, false);
      if (!name.is_discarded() && name.is_string()) {
        name_ = name.get<std::string>();
        have_name_ = true;
      } else {
        status_ = Status::Failed;
      }
    } else if (in_arguments_ && !streaming_) {
      // Arguments given before the name, or as a JSON string holding the object's text.
      auto value = nlohmann::json::parse(value_raw_, nullptr, false);
      if (!value.is_discarded() && value.is_string())
        arguments_ = value.get<std::string>();
      else
        arguments_ = value_raw_;
      have_arguments_ = true;
    } else if (in_arguments_) {
      have_arguments_ = true;
    }
    in_arguments_ = streaming_ = false;
  }

  bool end_object(std::vector<ToolEvent>& out) {
    if (!have_name_) return fail();
    if (!started_) {
      start(out);
      out.push_back({ToolEvent::Kind::CallArguments, index_, have_arguments_ ? arguments_ : "{}"});
    }
    close(out);
    status_ = Status::Done;
    return true;
  }

  void start(std::vector<ToolEvent>& out) {
    out.push_back({ToolEvent::Kind::CallStart, index_, name_});
    started_ = true;
  }

  void flush_arguments(std::vector<ToolEvent>& out) {
    if (fragment_.empty()) return;
    out.push_back({ToolEvent::Kind::CallArguments, index_, std::move(fragment_)});
    fragment_.clear();
  }

  bool fail() {
    status_ = Status::Failed;
    return true;
  }

  int index_;
  Status status_ = Status::NeedMore;
  State state_ = State::Start;
  std::string key_raw_, key_;
  bool key_escape_ = false;
  ValueScanner value_;
  std::string value_raw_;
  bool in_arguments_ = false, streaming_ = false;
  std::string name_, arguments_, fragment_;
  bool have_name_ = false, have_arguments_ = false, started_ = false, ended_ = false;
};

}  // namespace

ToolCallFormat detect_tool_call_format(std::string_view source) {
  if (source.find("<tool_call>") != std::string_view::npos) return ToolCallFormat::Hermes;
  if (source.find("<|python_tag|>") != std::string_view::npos ||
      (source.find("\"parameters\"") != std::string_view::npos &&
       source.find("ipython") != std::string_view::npos))
    return ToolCallFormat::LlamaJson;
  return ToolCallFormat::Hermes;
}

struct ToolCallParser::Impl {
  enum class Mode { Text, Call, AfterCall, Failed, Detect, Between };

  ToolCallFormat format;
  Mode mode;
  std::string pending;  // text not yet decided on
  std::string raw;      // the current call's text, for when it turns out not to be one
  std::unique_ptr<CallScanner> scanner;
  int next_index = 0;

  explicit Impl(ToolCallFormat f)
      : format(f), mode(f == ToolCallFormat::Hermes ? Mode::Text : Mode::Detect) {}

  void emit_text(std::string_view text, std::vector<ToolEvent>& out) {
    if (text.empty()) return;
    if (next_index > 0 && all_space(text)) return;  // the newlines between and after calls
    if (!out.empty() && out.back().kind == ToolEvent::Kind::Text)
      out.back().text += text;
    else
      out.push_back({ToolEvent::Kind::Text, 0, std::string(text)});
  }

  void begin_call() {
    scanner = std::make_unique<CallScanner>(next_index);
    raw.clear();
  }

  // Feeds `pending` to the scanner; returns true when the call ended (mode changed).
  void feed_call(std::vector<ToolEvent>& out) {
    raw += pending;
    const size_t used = scanner->feed(pending, out);
    switch (scanner->status()) {
      case CallScanner::Status::NeedMore:
        pending.clear();
        return;
      case CallScanner::Status::Done:
        ++next_index;
        raw.clear();
        pending.erase(0, used);
        mode = format == ToolCallFormat::Hermes ? Mode::AfterCall : Mode::Between;
        return;
      case CallScanner::Status::Failed:
        if (scanner->started()) {  // told in part already: end it, drop the rest of its text
          scanner->close(out);
          ++next_index;
          pending.clear();
          mode = format == ToolCallFormat::Hermes ? Mode::AfterCall : Mode::Text;
        } else if (format == ToolCallFormat::Hermes) {
          pending.clear();
          mode = Mode::Failed;  // plain text up to </tool_call>
        } else {
          pending.clear();
          emit_text(raw, out);
          mode = Mode::Text;
        }
        return;
    }
  }

  void push(std::string_view text, std::vector<ToolEvent>& out) {
    pending += text;
    for (;;) {
      switch (mode) {
        case Mode::Text: {
          if (format == ToolCallFormat::LlamaJson) {
            emit_text(pending, out);
            pending.clear();
            return;
          }
          const size_t at = pending.find(kHermesOpen);
          if (at != std::string::npos) {
            emit_text(std::string_view(pending).substr(0, at), out);
            pending.erase(0, at + kHermesOpen.size());
            begin_call();
            mode = Mode::Call;
            continue;
          }
          const size_t keep = partial_tag_suffix(pending, kHermesOpen);
          emit_text(std::string_view(pending).substr(0, pending.size() - keep), out);
          pending.erase(0, pending.size() - keep);
          return;
        }
        case Mode::Call:
          feed_call(out);
          if (mode == Mode::Call) return;
          continue;
        case Mode::AfterCall: {
          const size_t close = pending.find(kHermesClose);
          if (close != std::string::npos) {
            pending.erase(0, close + kHermesClose.size());
            mode = Mode::Text;
            continue;
          }
          const size_t open = pending.find(kHermesOpen);  // no closing tag before the next call
          if (open != std::string::npos) {
            pending.erase(0, open);
            mode = Mode::Text;
            continue;
          }
          const size_t keep = std::max(partial_tag_suffix(pending, kHermesClose),
                                       partial_tag_suffix(pending, kHermesOpen));
          pending.erase(0, pending.size() - keep);
          return;
        }
        case Mode::Failed: {
          raw += pending;
          pending.clear();
          const size_t close = raw.find(kHermesClose);
          if (close == std::string::npos) return;
          emit_text(std::string(kHermesOpen) + raw.substr(0, close + kHermesClose.size()), out);
          pending = raw.substr(close + kHermesClose.size());
          raw.clear();
          mode = Mode::Text;
          continue;
        }
        case Mode::Detect: {
          size_t start = 0;
          while (start < pending.size() && is_space(pending[start])) ++start;
          std::string_view rest = std::string_view(pending).substr(start);
          if (rest.empty()) return;
          if (rest.substr(0, kPythonTag.size()) == kPythonTag) {
            pending.erase(start, kPythonTag.size());
            continue;
          }
          if (rest.size() < kPythonTag.size() && kPythonTag.substr(0, rest.size()) == rest) return;
          if (rest[0] == '{') {
            const std::string lead = pending.substr(0, start);
            pending.erase(0, start);
            begin_call();
            raw = lead;
            mode = Mode::Call;
            continue;
          }
          mode = Mode::Text;
          continue;
        }
        case Mode::Between: {
          size_t start = 0;
          while (start < pending.size() && (is_space(pending[start]) || pending[start] == ';'))
            ++start;
          pending.erase(0, start);
          if (pending.empty()) return;
          if (pending[0] == '{') {
            begin_call();
            mode = Mode::Call;
          } else {
            mode = Mode::Text;
          }
          continue;
        }
      }
    }
  }

  void finish(std::vector<ToolEvent>& out) {
    switch (mode) {
      case Mode::Text:
      case Mode::Detect:
        emit_text(pending, out);
        break;
      case Mode::Call:
        if (scanner->started()) {
          scanner->close(out);
          ++next_index;
        } else {
          emit_text(
              (format == ToolCallFormat::Hermes ? std::string(kHermesOpen) : std::string()) + raw,
              out);
        }
        break;
      case Mode::Failed:
        emit_text(std::string(kHermesOpen) + raw + pending, out);
        break;
      case Mode::AfterCall:
      case Mode::Between:
        break;
    }
    pending.clear();
    raw.clear();
    mode = format == ToolCallFormat::Hermes ? Mode::Text : Mode::Detect;
  }
};

ToolCallParser::ToolCallParser(ToolCallFormat format) : impl_(std::make_unique<Impl>(format)) {}
ToolCallParser::~ToolCallParser() = default;
ToolCallParser::ToolCallParser(ToolCallParser&&) noexcept = default;
ToolCallParser& ToolCallParser::operator=(ToolCallParser&&) noexcept = default;

void ToolCallParser::push(std::string_view text, std::vector<ToolEvent>& out) {
  impl_->push(text, out);
}
void ToolCallParser::finish(std::vector<ToolEvent>& out) {
  impl_->finish(out);
}
int ToolCallParser::calls() const {
  return impl_->next_index;
}

}  // namespace hwledger::server
