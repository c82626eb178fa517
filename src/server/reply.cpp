#include "server/reply.h"

#include <iterator>
#include <mutex>
#include <random>

namespace hwledger::server {

std::string random_id(const std::string& prefix) {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  static const char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string id = prefix;
  std::lock_guard lock(mu);
  for (int i = 0; i < 24; ++i) id += kAlphabet[rng() % (sizeof(kAlphabet) - 1)];
  return id;
}

Reply::Reply(std::optional<ToolCallFormat> tool_format, std::string id_prefix)
    : id_prefix_(std::move(id_prefix)) {
  if (tool_format) parser_.emplace(*tool_format);
}

void Reply::prime(const std::string& text) {
  add_text(text, primed_);
}

void Reply::add(std::vector<SessionEvent>& events, std::vector<OutputEvent>& out) {
  if (!primed_.empty()) {
    out.insert(out.end(), std::make_move_iterator(primed_.begin()),
               std::make_move_iterator(primed_.end()));
    primed_.clear();
  }
  for (SessionEvent& e : events) {
    if (done_) break;
    switch (e.kind) {
      case SessionEvent::Kind::Progress:
        ++prefill_events_;
        break;
      case SessionEvent::Kind::Text:
        add_text(e.text, out);
        if (e.logprob) {
          logprobs_.push_back(*e.logprob);
          OutputEvent lp;
          lp.kind = OutputEvent::Kind::Logprob;
          lp.logprob = std::move(*e.logprob);
          out.push_back(std::move(lp));
        }
        break;
      case SessionEvent::Kind::Done: {
        add_text(e.text, out);
        if (parser_) {
          std::vector<ToolEvent> tail;
          parser_->finish(tail);
          convert(tail, out);
          if (!held_space_.empty() && tool_calls_.empty()) {
            content_ += held_space_;
            out.push_back({OutputEvent::Kind::Content, 0, std::move(held_space_), {}, {}});
          }
          held_space_.clear();
        }
        result_ = e.result;
        stop_sequence_ = e.stop_sequence;
        done_ = true;
        break;
      }
    }
  }
}

void Reply::add_text(const std::string& text, std::vector<OutputEvent>& out) {
  if (text.empty()) return;
  if (!parser_) {
    content_ += text;
    out.push_back({OutputEvent::Kind::Content, 0, text, {}, {}});
    return;
  }
  std::vector<ToolEvent> events;
  parser_->push(text, events);
  convert(events, out);
}

void Reply::convert(std::vector<ToolEvent>& events, std::vector<OutputEvent>& out) {
  for (ToolEvent& e : events) {
    switch (e.kind) {
      case ToolEvent::Kind::Text:
        // Whitespace waits: before a tool call it is dropped (no empty text block).
        if (tool_calls_.empty() && e.text.find_first_not_of(" \t\r\n") == std::string::npos) {
          held_space_ += e.text;
          break;
        }
        if (!held_space_.empty()) {
          e.text = held_space_ + e.text;
          held_space_.clear();
        }
        content_ += e.text;
        out.push_back({OutputEvent::Kind::Content, 0, std::move(e.text), {}, {}});
        break;
      case ToolEvent::Kind::CallStart: {
        held_space_.clear();
        ToolCallOut call{random_id(id_prefix_), e.text, {}};
        out.push_back({OutputEvent::Kind::ToolStart, e.index, std::move(e.text), call.id, {}});
        tool_calls_.push_back(std::move(call));
        break;
      }
      case ToolEvent::Kind::CallArguments:
        if (e.index < static_cast<int>(tool_calls_.size()))
          tool_calls_[e.index].arguments += e.text;
        out.push_back({OutputEvent::Kind::ToolArguments, e.index, std::move(e.text), {}, {}});
        break;
      case ToolEvent::Kind::CallEnd:
        out.push_back({OutputEvent::Kind::ToolEnd, e.index, {}, {}, {}});
        break;
    }
  }
}

}  // namespace hwledger::server
