// Generated tokens to streamed text with stop strings, for the front ends' RequestSinks.
//
// Rule: text goes out as soon as it is certain to be part of the answer. A tail of the text that
// could still become a stop string is held back until the next token decides; when a stop string
// completes (in one token or across several), the text before it goes out, the stop string and
// everything after it never do, and the stream reports the stop (the sink then returns false).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace hwledger {

// The stop-string rule on text that arrives in pieces (already whole UTF-8 characters).
class StopStringMatcher {
 public:
  explicit StopStringMatcher(std::vector<std::string> stop_strings);  // empty strings are ignored

  // Adds text; returns what may be shown now. After a stop, returns "" forever.
  std::string push(std::string_view text);
  // End of the stream without a stop: returns the held-back text.
  std::string finish();

  bool stopped() const { return stopped_index_ >= 0; }
  // The stop string that matched ("" when none).
  const std::string& matched() const;

 private:
  std::vector<std::string> stops_;
  size_t longest_ = 0;
  std::string pending_;  // held back: a suffix that may be the start of a stop string
  int stopped_index_ = -1;
};

class TextStream {
 public:
  // skip_special_tokens: as in Tokenizer::decode (OpenAI-style servers skip them by default).
  TextStream(const tokenizer::Tokenizer& tokenizer, std::vector<std::string> stop_strings,
             bool skip_special_tokens = true);

  // Adds a generated token; returns the text that may be shown now (often "", e.g. while a
  // character's bytes or a possible stop string are incomplete).
  std::string push(int32_t token);
  // End of generation without a stop string: the held-back text (an unfinished character
  // becomes U+FFFD).
  std::string finish();

  bool stopped() const { return matcher_.stopped(); }
  const std::string& matched_stop() const { return matcher_.matched(); }

 private:
  tokenizer::StreamingDetokenizer detokenizer_;
  StopStringMatcher matcher_;
};

}  // namespace hwledger
