#include "tokenizer/json_loader.h"

#include "util/error.h"

namespace hwledger::tokenizer {
namespace {

using nlohmann::json;

// Forwards every event to nlohmann's tree builder, except the values of "vocab" and "merges"
// inside the top-level "model" object, which it collects itself.
class Handler {
 public:
  using number_integer_t = json::number_integer_t;
  using number_unsigned_t = json::number_unsigned_t;
  using number_float_t = json::number_float_t;
  using string_t = json::string_t;
  using binary_t = json::binary_t;

  Handler(TokenizerJson& out, const std::string& origin)
      : out_(out), origin_(origin), dom_(out.doc, true) {}

  bool null() {
    return scalar_or_forward([&] { return dom_.null(); }, "null");
  }
  bool boolean(bool v) {
    return scalar_or_forward([&] { return dom_.boolean(v); }, "a boolean");
  }
  bool number_integer(number_integer_t v) {
    if (mode_ == Mode::kVocab && depth_ == capture_depth_) return vocab_id(v);
    return scalar_or_forward([&] { return dom_.number_integer(v); }, "a number");
  }
  bool number_unsigned(number_unsigned_t v) {
    if (mode_ == Mode::kVocab && depth_ == capture_depth_)
      return vocab_id(v > number_unsigned_t(INT32_MAX) ? -1 : number_integer_t(v));
    return scalar_or_forward([&] { return dom_.number_unsigned(v); }, "a number");
  }
  bool number_float(number_float_t v, const string_t& s) {
    return scalar_or_forward([&] { return dom_.number_float(v, s); }, "a number");
  }
  bool binary(binary_t& v) {
    return scalar_or_forward([&] { return dom_.binary(v); }, "binary");
  }

  bool string(string_t& v) {
    switch (mode_) {
      case Mode::kForward:
        return dom_.string(v);
      case Mode::kPendingVocab:
        bad("model.vocab", "an object", "a string");
      case Mode::kPendingMerges:
        bad("model.merges", "an array", "a string");
      case Mode::kVocab:
        bad_entry("model.vocab['" + key_ + "']", "an integer id", "a string");
      case Mode::kMerges:
        if (depth_ == capture_depth_) {
          size_t space = v.find(' ');
          if (space == string_t::npos)
            fail_input("{}: model.merges[{}] '{}' is not two tokens separated by a space", origin_,
                       out_.merges.size(), v);
          out_.merges.emplace_back(v.substr(0, space), v.substr(space + 1));
        } else {
          pair_.push_back(std::move(v));
        }
        return true;
    }
    return true;
  }

  bool start_object(std::size_t size) {
    ++depth_;
    if (mode_ == Mode::kPendingVocab) {
      mode_ = Mode::kVocab;
      capture_depth_ = depth_;
      out_.has_vocab = true;
      if (size != std::size_t(-1)) out_.vocab.reserve(size);
      return true;
    }
    if (mode_ == Mode::kPendingMerges) bad("model.merges", "an array", "an object");
    if (mode_ == Mode::kVocab)
      bad_entry("model.vocab['" + key_ + "']", "an integer id", "an object");
    if (mode_ == Mode::kMerges) bad_entry(merge_name(), "\"a b\" or [\"a\", \"b\"]", "an object");
    if (depth_ == 2 && expect_model_) in_model_ = true;
    expect_model_ = false;
    return dom_.start_object(size);
  }

  bool key(string_t& k) {
    if (mode_ == Mode::kVocab) {
      key_ = std::move(k);
      return true;
    }
    if (depth_ == 1) expect_model_ = k == "model";
    if (in_model_ && depth_ == 2 && (k == "vocab" || k == "merges")) {
      mode_ = k == "vocab" ? Mode::kPendingVocab : Mode::kPendingMerges;
      return true;  // the tree never sees this member
    }
    return dom_.key(k);
  }

  bool end_object() {
    if (mode_ == Mode::kVocab) {
      mode_ = Mode::kForward;
      --depth_;
      return true;
    }
    if (depth_ == 2 && in_model_) in_model_ = false;
    --depth_;
    return dom_.end_object();
  }

  bool start_array(std::size_t size) {
    ++depth_;
    if (mode_ == Mode::kPendingMerges) {
      mode_ = Mode::kMerges;
      capture_depth_ = depth_;
      out_.has_merges = true;
      if (size != std::size_t(-1)) out_.merges.reserve(size);
      return true;
    }
    if (mode_ == Mode::kPendingVocab) bad("model.vocab", "an object", "an array");
    if (mode_ == Mode::kVocab)
      bad_entry("model.vocab['" + key_ + "']", "an integer id", "an array");
    if (mode_ == Mode::kMerges) {
      if (depth_ != capture_depth_ + 1)
        bad_entry(merge_name(), "\"a b\" or [\"a\", \"b\"]", "a nested array");
      pair_.clear();
      return true;
    }
    expect_model_ = false;
    return dom_.start_array(size);
  }

  bool end_array() {
    if (mode_ == Mode::kMerges) {
      if (depth_ == capture_depth_) {
        mode_ = Mode::kForward;
      } else {
        if (pair_.size() != 2)
          bad_entry(merge_name(), "[\"a\", \"b\"]", fmt::format("{} strings", pair_.size()));
        out_.merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
      }
      --depth_;
      return true;
    }
    --depth_;
    return dom_.end_array();
  }

  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    fail_input("{}: malformed JSON: {}", origin_, e.what());
  }

 private:
  enum class Mode { kForward, kPendingVocab, kVocab, kPendingMerges, kMerges };

  template <typename F>
  bool scalar_or_forward(F&& forward, const char* what) {
    switch (mode_) {
      case Mode::kForward:
        expect_model_ = false;
        return forward();
      case Mode::kPendingVocab:
        bad("model.vocab", "an object", what);
      case Mode::kPendingMerges:
        bad("model.merges", "an array", what);
      case Mode::kVocab:
        bad_entry("model.vocab['" + key_ + "']", "an integer id", what);
      case Mode::kMerges:
        bad_entry(merge_name(), "\"a b\" or [\"a\", \"b\"]", what);
    }
    return false;
  }
  bool vocab_id(number_integer_t id) {
    if (id < 0 || id > INT32_MAX)
      fail_input("{}: model.vocab['{}'] has id {} (must be a non-negative 32-bit integer)", origin_,
                 key_, id);
    out_.vocab.emplace_back(std::move(key_), int32_t(id));
    return true;
  }
  std::string merge_name() const { return fmt::format("model.merges[{}]", out_.merges.size()); }
  [[noreturn]] void bad(const std::string& what, const char* want, const std::string& got) {
    fail_input("{}: {} must be {}, got {}", origin_, what, want, got);
  }
  [[noreturn]] void bad_entry(const std::string& what, const char* want, const std::string& got) {
    fail_input("{}: {} must be {}, got {}", origin_, what, want, got);
  }

  TokenizerJson& out_;
  const std::string& origin_;
  nlohmann::detail::json_sax_dom_parser<json> dom_;
  Mode mode_ = Mode::kForward;
  int depth_ = 0;
  int capture_depth_ = 0;
  bool expect_model_ = false;  // the next value is the top-level "model"
  bool in_model_ = false;
  std::string key_;
  std::vector<std::string> pair_;
};

}  // namespace

TokenizerJson parse_tokenizer_json(std::string_view text, const std::string& origin) {
  TokenizerJson out;
  Handler handler(out, origin);
  json::sax_parse(text.begin(), text.end(), &handler);
  return out;
}

}  // namespace hwledger::tokenizer
