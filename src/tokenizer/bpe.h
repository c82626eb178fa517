// The BPE model: turns one pre-token into token ids by applying the ranked merges.
//
// Merges run on token ids, never on strings: the merge table maps an id pair to (rank, merged
// id). Each pre-token starts as one symbol per byte (byte-level vocabularies) or per character
// (SentencePiece-style, with <0xNN> byte fallback and <unk>), and the lowest-ranked adjacent
// pair, leftmost first, is merged until no pair is in the table. Short pre-tokens use arrays
// and a linear scan; long ones a binary heap over a linked list (O(n log n)). Results for
// pre-tokens up to 54 bytes are kept in a bounded, lock-sharded cache.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/flat_map.h"

namespace hwledger::tokenizer {

struct BpeSource {
  std::vector<std::pair<std::string, int32_t>> vocab;       // token (as in the JSON) -> id
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool byte_fallback = false;
  bool fuse_unk = false;
  bool ignore_merges = false;
};

// Per-call working memory, so concurrent encodes share nothing mutable but the cache.
struct BpeScratch {
  std::vector<int32_t> symbols;
  // When symbols are one per byte of the word (byte-level), the word's bytes: the first pair
  // ranks then come from the dense byte-pair table.
  const uint8_t* bytes = nullptr;
  std::vector<uint32_t> ranks;
  std::vector<int32_t> merged;
  std::vector<int32_t> prev, next;
  std::vector<uint32_t> versions;
  struct Candidate {  // a possible merge of the pair starting at `pos`
    uint32_t rank, pos, version;
    int32_t merged_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::vector<Candidate> heap;
};

class WordCache;

class BpeModel {
 public:
  // byte_level: pre-tokens arrive as raw bytes and the vocabulary is written in the GPT-2
  // byte alphabet. Throws InputError naming `origin` on a merge whose tokens are missing.
  BpeModel(BpeSource source, bool byte_level, const std::string& origin);
  ~BpeModel();
  BpeModel(BpeModel&&) noexcept;
  BpeModel& operator=(BpeModel&&) noexcept;

  // Appends the ids of one pre-token.
  void tokenize(std::string_view word, std::vector<int32_t>& out, BpeScratch& scratch) const;
  // Whether pre-tokens are cut before each U+2581 (see split_on_metaspace_).
  bool splits_on_metaspace() const { return split_on_metaspace_; }

  int32_t token_to_id(std::string_view token) const { return vocab_.find(token); }
  // Model vocabulary: ids [0, id_limit()), with holes where no token has that id.
  size_t id_limit() const { return tokens_.size(); }
  bool has_id(int32_t id) const {
    return id >= 0 && size_t(id) < tokens_.size() && present_[size_t(id)];
  }
  const std::string& token(int32_t id) const { return tokens_[size_t(id)]; }
  bool byte_level() const { return byte_level_; }
  size_t merge_count() const { return merge_count_; }

 private:
  void tokenize_chunk(std::string_view word, std::vector<int32_t>& out, BpeScratch& scratch) const;
  void initial_symbols(std::string_view word, std::vector<int32_t>& symbols) const;
  void merge(BpeScratch& scratch) const;
  void merge_small(BpeScratch& scratch) const;
  void merge_large(BpeScratch& scratch) const;

  std::vector<std::string> tokens_;  // [id_limit] token text as in the JSON
  std::vector<bool> present_;        // [id_limit]
  StringIdTable vocab_;              // token text -> id
  StringIdTable raw_vocab_;          // byte-level only: token bytes -> id
  MergeTable merges_;
  // Byte-level: merges of two single-byte tokens, indexed by (left byte << 8 | right byte).
  // 512 KiB that stay in cache, for the first merges of every word (all of a CJK word's).
  std::vector<MergeTable::Merge> byte_pairs_;
  size_t merge_count_ = 0;
  int32_t byte_ids_[256];      // byte-level: id of each byte's character, or -1
  int32_t fallback_ids_[256];  // byte_fallback: id of <0xNN>, or -1
  int32_t unk_id_ = -1;
  bool byte_level_ = false;
  bool byte_fallback_ = false;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  std::string prefix_, suffix_;
  // SentencePiece-style models run BPE on whole texts (no pre-tokenizer). When no token has
  // U+2581 after another character, no merge can join across the start of a "▁word", so
  // cutting the text there gives the same ids, and turns one huge word into many short,
  // cacheable ones. Checked on the vocabulary at load.
  bool split_on_metaspace_ = false;
  std::unique_ptr<WordCache> cache_;
};

}  // namespace hwledger::tokenizer
