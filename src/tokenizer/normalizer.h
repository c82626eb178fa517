// Normalizers of the Hugging Face `tokenizers` pipeline: they rewrite each piece of text
// (between added tokens) before pre-tokenization.
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace hwledger::tokenizer {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Returns the normalized form of `in`: either `in` itself (unchanged) or a view of
  // `scratch`, which the call may overwrite. Input and output are valid UTF-8.
  virtual std::string_view normalize(std::string_view in, std::string& scratch) const = 0;
};

// Builds the normalizer described by tokenizer.json's "normalizer" value; nullptr for null.
// Throws InputError naming `origin` and the component for anything unsupported.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& spec, const std::string& origin);

// Canonical composition (NFC) of valid UTF-8, skipping the work where the text is already NFC
// (ASCII, CJK, most scripts): only windows around code points that may change are handed to
// utf8proc. Exposed for tests.
std::string nfc(std::string_view in);

}  // namespace hwledger::tokenizer
