#include "tokenizer/bpe.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <new>

#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"
#include "util/error.h"

namespace hwledger::tokenizer {

// Bounded cache of pre-token -> ids: direct-mapped slots of fixed size (no allocation after
// construction), split into shards that each have their own lock, so encodes running on many
// threads rarely wait for each other. A slot is simply overwritten when another word hashes
// to it.
class WordCache {
 public:
  static constexpr size_t kMaxWordBytes = 54;
  static constexpr size_t kMaxIds = 16;

  // Zeroed memory is a valid empty cache (no word hashes to 0 with length 0 and is looked
  // up), and calloc's fresh pages cost nothing until a slot is first used.
  WordCache()
      : locks_(std::make_unique<std::mutex[]>(kShards)),
        entries_(static_cast<Entry*>(std::calloc(kShards * kSlotsPerShard, sizeof(Entry)))) {
    if (entries_ == nullptr) throw std::bad_alloc();
  }
  ~WordCache() { std::free(entries_); }
  WordCache(const WordCache&) = delete;
  WordCache& operator=(const WordCache&) = delete;

  bool lookup(std::string_view word, uint64_t hash, std::vector<int32_t>& out) const {
    size_t shard = hash & (kShards - 1);
    const Entry& entry = entries_[shard * kSlotsPerShard + ((hash >> 16) & (kSlotsPerShard - 1))];
    int32_t ids[kMaxIds];
    size_t count;
    {
      std::lock_guard<std::mutex> lock(locks_[shard]);
      if (entry.hash != hash || entry.word_len != word.size() ||
          std::memcmp(entry.word, word.data(), word.size()) != 0)
        return false;
      count = entry.id_count;
      std::memcpy(ids, entry.ids, count * sizeof(int32_t));
    }
    out.insert(out.end(), ids, ids + count);
    return true;
  }

  void insert(std::string_view word, uint64_t hash, const int32_t* ids, size_t count) {
    if (word.size() > kMaxWordBytes || count > kMaxIds) return;
    size_t shard = hash & (kShards - 1);
    Entry& entry = entries_[shard * kSlotsPerShard + ((hash >> 16) & (kSlotsPerShard - 1))];
    std::lock_guard<std::mutex> lock(locks_[shard]);
    entry.hash = hash;
    entry.word_len = uint8_t(word.size());
    entry.id_count = uint8_t(count);
    std::memcpy(entry.word, word.data(), word.size());
    if (count > 0) std::memcpy(entry.ids, ids, count * sizeof(int32_t));  // ids may be null
  }

 private:
  static constexpr size_t kShards = 64;
  static constexpr size_t kSlotsPerShard = 512;  // 64 * 512 entries of 128 bytes: 4 MiB
  struct Entry {
    uint64_t hash;
    uint8_t word_len;
    uint8_t id_count;
    char word[kMaxWordBytes];
    int32_t ids[kMaxIds];
  };
  static_assert(sizeof(Entry) == 128);
  std::unique_ptr<std::mutex[]> locks_;  // [kShards]
  Entry* entries_;                       // [kShards * kSlotsPerShard], calloc'ed
};

namespace {

constexpr size_t kMaxVocabId = size_t(1) << 24;
constexpr std::string_view kMetaspace = "\u2581";

// True when `token` has U+2581 right after a character that is not U+2581.
bool has_inner_metaspace(std::string_view token) {
  for (size_t hit = token.find(kMetaspace, 1); hit != std::string_view::npos;
       hit = token.find(kMetaspace, hit + 1)) {
    if (hit < kMetaspace.size() ||
        token.substr(hit - kMetaspace.size(), kMetaspace.size()) != kMetaspace)
      return true;
  }
  return false;
}
// Pre-tokens with at most this many symbols are merged with plain arrays.
constexpr size_t kSmallWord = 64;

}  // namespace

BpeModel::~BpeModel() = default;
BpeModel::BpeModel(BpeModel&&) noexcept = default;
BpeModel& BpeModel::operator=(BpeModel&&) noexcept = default;

BpeModel::BpeModel(BpeSource source, bool byte_level, const std::string& origin)
    : byte_level_(byte_level),
      byte_fallback_(source.byte_fallback),
      fuse_unk_(source.fuse_unk),
      ignore_merges_(source.ignore_merges),
      prefix_(std::move(source.continuing_subword_prefix)),
      suffix_(std::move(source.end_of_word_suffix)),
      cache_(std::make_unique<WordCache>()) {
  if (byte_level_ && (!prefix_.empty() || !suffix_.empty()))
    fail_input(
        "{}: unsupported BPE with ByteLevel and continuing_subword_prefix '{}' / "
        "end_of_word_suffix '{}'",
        origin, prefix_, suffix_);
  // Vocabulary.
  size_t limit = 0, total_bytes = 0;
  for (const auto& [token, id] : source.vocab) {
    if (id < 0 || size_t(id) >= kMaxVocabId)
      fail_input("{}: model.vocab: token '{}' has id {} (must be in [0, {}))", origin, token, id,
                 kMaxVocabId);
    limit = std::max(limit, size_t(id) + 1);
    total_bytes += token.size();
  }
  tokens_.assign(limit, std::string());
  present_.assign(limit, false);
  vocab_.reserve(source.vocab.size(), total_bytes);
  // Raw-byte keys are only looked up for ignore_merges.
  bool raw_keys = byte_level_ && ignore_merges_;
  if (raw_keys) raw_vocab_.reserve(source.vocab.size(), total_bytes);
  std::string raw;
  for (auto& [token, id] : source.vocab) {
    vocab_.insert(token, id);
    if (raw_keys && byte_level::decode_token(token, raw)) raw_vocab_.insert(raw, id);
    tokens_[size_t(id)] = std::move(token);
    present_[size_t(id)] = true;
  }
  if (!byte_level_ && prefix_.empty() && suffix_.empty() && vocab_.find(kMetaspace) >= 0) {
    split_on_metaspace_ = true;
    for (size_t id = 0; id < tokens_.size() && split_on_metaspace_; ++id)
      if (present_[id] && has_inner_metaspace(tokens_[id])) split_on_metaspace_ = false;
  }
  // Initial symbols.
  const auto& chars = byte_level::byte_chars();
  for (int b = 0; b < 256; ++b) {
    byte_ids_[b] = byte_level_ ? vocab_.find(chars[size_t(b)]) : -1;
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    fallback_ids_[b] = byte_fallback_ ? vocab_.find(name) : -1;
  }
  if (source.unk_token) unk_id_ = vocab_.find(*source.unk_token);
  // Merges: rank = position in the list.
  merges_.reserve(source.merges.size());
  std::vector<int16_t> byte_of;  // [id_limit] the byte a single-byte token stands for, or -1
  if (byte_level_) {
    byte_of.assign(tokens_.size(), -1);
    for (int b = 0; b < 256; ++b)
      if (byte_ids_[b] >= 0) byte_of[size_t(byte_ids_[b])] = int16_t(b);
    byte_pairs_.assign(size_t(1) << 16, {MergeTable::kNoRank, -1});
  }
  std::string merged;
  for (size_t rank = 0; rank < source.merges.size(); ++rank) {
    const auto& [left, right] = source.merges[rank];
    int32_t left_id = vocab_.find(left), right_id = vocab_.find(right);
    merged.assign(left);
    merged.append(std::string_view(right).substr(std::min(prefix_.size(), right.size())));
    int32_t merged_id = vocab_.find(merged);
    if (left_id < 0 || right_id < 0 || merged_id < 0) {
      std::string_view missing = left_id < 0 ? left : right_id < 0 ? right : merged;
      fail_input("{}: model.merges[{}] ('{}' '{}'): token '{}' is not in the vocabulary", origin,
                 rank, left, right, missing);
    }
    merges_.insert(left_id, right_id, {uint32_t(rank), merged_id});
    if (byte_level_ && byte_of[size_t(left_id)] >= 0 && byte_of[size_t(right_id)] >= 0)
      byte_pairs_[size_t(byte_of[size_t(left_id)]) << 8 | size_t(byte_of[size_t(right_id)])] = {
          uint32_t(rank), merged_id};
  }
  merge_count_ = source.merges.size();
}

void BpeModel::initial_symbols(std::string_view word, std::vector<int32_t>& symbols) const {
  symbols.clear();
  bool last_was_unk = false;
  auto unknown = [&](std::string_view bytes) {
    if (byte_fallback_) {
      bool all = true;
      for (char c : bytes) all &= fallback_ids_[uint8_t(c)] >= 0;
      if (all) {
        for (char c : bytes) symbols.push_back(fallback_ids_[uint8_t(c)]);
        last_was_unk = false;
        return;
      }
    }
    if (unk_id_ < 0) return;  // no unk token: the character is dropped, as in `tokenizers`
    if (!(fuse_unk_ && last_was_unk)) symbols.push_back(unk_id_);
    last_was_unk = true;
  };
  if (byte_level_) {
    for (char c : word) {
      int32_t id = byte_ids_[uint8_t(c)];
      if (id >= 0) {
        symbols.push_back(id);
        last_was_unk = false;
      } else {
        unknown(std::string_view(&c, 1));
      }
    }
    return;
  }
  std::string with_affixes;
  size_t pos = 0;
  while (pos < word.size()) {
    size_t start = pos;
    int len = utf8::sequence_length(uint8_t(word[pos]));
    pos += size_t(len > 0 ? len : 1);
    if (pos > word.size()) pos = word.size();
    std::string_view ch = word.substr(start, pos - start);
    std::string_view key = ch;
    if ((!prefix_.empty() && start > 0) || (!suffix_.empty() && pos == word.size())) {
      with_affixes.clear();
      if (start > 0) with_affixes.append(prefix_);
      with_affixes.append(ch);
      if (pos == word.size()) with_affixes.append(suffix_);
      key = with_affixes;
    }
    int32_t id = vocab_.find(key);
    if (id >= 0) {
      symbols.push_back(id);
      last_was_unk = false;
    } else {
      unknown(ch);
    }
  }
}

void BpeModel::merge_small(BpeScratch& s) const {
  // Symbols stay where they are; a merged-away symbol is unlinked and its pair rank set to
  // "none", so finding the next merge is a branch-free minimum over a small array (which the
  // compiler vectorizes) and each merge costs two table lookups, for the new neighbours.
  auto& sym = s.symbols;
  auto& ranks = s.ranks;    // [n] rank of the pair starting at symbol i, kNoRank if none
  auto& merged = s.merged;  // [n] what that pair merges into
  auto& next = s.next;      // [n] next live symbol, -1 at the end
  auto& prev = s.prev;      // [n] previous live symbol, -1 at the start
  const auto n = int32_t(sym.size());
  ranks.resize(size_t(n));
  merged.resize(size_t(n));
  next.resize(size_t(n));
  prev.resize(size_t(n));
  for (int32_t i = 0; i < n; ++i) {
    prev[size_t(i)] = i - 1;
    next[size_t(i)] = i + 1 < n ? i + 1 : -1;
  }
  auto score = [&](int32_t i) {
    int32_t right = next[size_t(i)];
    const MergeTable::Merge* m =
        right >= 0 ? merges_.find(sym[size_t(i)], sym[size_t(right)]) : nullptr;
    ranks[size_t(i)] = m ? m->rank : MergeTable::kNoRank;
    merged[size_t(i)] = m ? m->merged_id : -1;
  };
  if (s.bytes != nullptr) {
    for (int32_t i = 0; i + 1 < n; ++i) {
      const MergeTable::Merge& m = byte_pairs_[size_t(s.bytes[i]) << 8 | s.bytes[i + 1]];
      ranks[size_t(i)] = m.rank;
      merged[size_t(i)] = m.merged_id;
    }
    ranks[size_t(n) - 1] = MergeTable::kNoRank;
  } else {
    for (int32_t i = 0; i < n; ++i) score(i);
  }
  const uint32_t* rank_data = ranks.data();
  while (true) {
    uint32_t best_rank = MergeTable::kNoRank;
    for (int32_t i = 0; i < n; ++i) best_rank = std::min(best_rank, rank_data[i]);
    if (best_rank == MergeTable::kNoRank) break;
    int32_t best = 0;
    while (rank_data[best] != best_rank) ++best;  // the leftmost of equal pairs
    int32_t right = next[size_t(best)];
    sym[size_t(best)] = merged[size_t(best)];
    sym[size_t(right)] = -1;
    ranks[size_t(right)] = MergeTable::kNoRank;
    int32_t after = next[size_t(right)];
    next[size_t(best)] = after;
    if (after >= 0) prev[size_t(after)] = best;
    score(best);
    if (prev[size_t(best)] >= 0) score(prev[size_t(best)]);
  }
  size_t out = 0;
  for (int32_t i = 0; i >= 0; i = next[size_t(i)]) sym[out++] = sym[size_t(i)];
  sym.resize(out);
}

void BpeModel::merge_large(BpeScratch& s) const {
  // `tokenizers`' algorithm: a min-heap of candidate merges (rank, then position) over a doubly
  // linked list of symbols. A heap entry goes stale when either of its symbols changes; a
  // per-position version number detects that without another table lookup.
  auto& sym = s.symbols;
  const int32_t n = int32_t(sym.size());
  auto& prev = s.prev;
  auto& next = s.next;
  auto& version = s.versions;  // [n] bumped when the pair starting at i changes
  prev.resize(size_t(n));
  next.resize(size_t(n));
  version.assign(size_t(n), 0);
  for (int32_t i = 0; i < n; ++i) {
    prev[size_t(i)] = i - 1;
    next[size_t(i)] = i + 1 < n ? i + 1 : -1;
  }
  auto& heap = s.heap;
  heap.clear();
  auto candidate = [&](int32_t pos) {
    const MergeTable::Merge* m = merges_.find(sym[size_t(pos)], sym[size_t(next[size_t(pos)])]);
    if (m == nullptr) return false;
    heap.push_back({m->rank, uint32_t(pos), version[size_t(pos)], m->merged_id});
    return true;
  };
  if (s.bytes != nullptr) {
    for (int32_t i = 0; i + 1 < n; ++i) {
      const MergeTable::Merge& m = byte_pairs_[size_t(s.bytes[i]) << 8 | s.bytes[i + 1]];
      if (m.rank != MergeTable::kNoRank) heap.push_back({m.rank, uint32_t(i), 0, m.merged_id});
    }
  } else {
    for (int32_t i = 0; i + 1 < n; ++i) candidate(i);
  }
  std::make_heap(heap.begin(), heap.end(), std::greater<>());
  auto push = [&](int32_t pos) {
    if (candidate(pos)) std::push_heap(heap.begin(), heap.end(), std::greater<>());
  };
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    BpeScratch::Candidate top = heap.back();
    heap.pop_back();
    auto pos = int32_t(top.pos);
    if (sym[size_t(pos)] < 0 || version[size_t(pos)] != top.version) continue;  // stale
    int32_t right = next[size_t(pos)];
    sym[size_t(pos)] = top.merged_id;
    sym[size_t(right)] = -1;
    int32_t after = next[size_t(right)];
    next[size_t(pos)] = after;
    if (after >= 0) prev[size_t(after)] = pos;
    ++version[size_t(pos)];
    int32_t before = prev[size_t(pos)];
    if (before >= 0) {
      ++version[size_t(before)];
      push(before);
    }
    if (after >= 0) push(pos);
  }
  size_t out = 0;
  for (int32_t i = 0; i >= 0; i = next[size_t(i)]) sym[out++] = sym[size_t(i)];
  sym.resize(out);
}

void BpeModel::merge(BpeScratch& scratch) const {
  if (scratch.symbols.size() < 2) return;
  if (scratch.symbols.size() <= kSmallWord)
    merge_small(scratch);
  else
    merge_large(scratch);
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out,
                        BpeScratch& scratch) const {
  if (!split_on_metaspace_) {
    tokenize_chunk(word, out, scratch);
    return;
  }
  size_t start = 0;
  for (size_t hit = word.find(kMetaspace, 1); hit != std::string_view::npos;
       hit = word.find(kMetaspace, hit + 1)) {
    bool after_metaspace = hit >= kMetaspace.size() &&
                           word.substr(hit - kMetaspace.size(), kMetaspace.size()) == kMetaspace;
    if (after_metaspace) continue;
    tokenize_chunk(word.substr(start, hit - start), out, scratch);
    start = hit;
  }
  tokenize_chunk(word.substr(start), out, scratch);
}

void BpeModel::tokenize_chunk(std::string_view word, std::vector<int32_t>& out,
                              BpeScratch& scratch) const {
  if (word.empty()) return;
  if (byte_level_ && word.size() == 1 && byte_ids_[uint8_t(word[0])] >= 0) {
    out.push_back(byte_ids_[uint8_t(word[0])]);
    return;
  }
  if (ignore_merges_) {
    // A pre-token that is itself in the vocabulary is emitted whole.
    int32_t id = byte_level_ ? raw_vocab_.find(word) : vocab_.find(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  bool cacheable = word.size() <= WordCache::kMaxWordBytes;
  uint64_t hash = 0;
  if (cacheable) {
    hash = hash_bytes(word);
    if (cache_->lookup(word, hash, out)) return;
  }
  initial_symbols(word, scratch.symbols);
  bool one_per_byte = byte_level_ && scratch.symbols.size() == word.size();
  scratch.bytes = one_per_byte ? reinterpret_cast<const uint8_t*>(word.data()) : nullptr;
  merge(scratch);
  out.insert(out.end(), scratch.symbols.begin(), scratch.symbols.end());
  if (cacheable) cache_->insert(word, hash, scratch.symbols.data(), scratch.symbols.size());
}

}  // namespace hwledger::tokenizer
