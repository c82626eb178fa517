// Small open-addressing hash tables for the BPE hot path: the merge table (token-id pair ->
// rank and result) and the vocabulary (token bytes -> id). Both are built once at load and
// only read afterwards, so lookups need no locking.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hwledger::tokenizer {

inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

// FNV-1a over 8-byte words; fast enough for short pre-tokens and good enough for tables.
inline uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    __builtin_memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  uint64_t tail = 0;
  for (size_t k = 0; i < s.size(); ++i, ++k) tail |= uint64_t(uint8_t(s[i])) << (8 * k);
  h = (h ^ tail) * 0x100000001b3ull;
  return mix64(h);
}

// (left id, right id) -> (rank, merged id). Linear probing, load factor <= 0.5.
class MergeTable {
 public:
  struct Merge {
    uint32_t rank;
    int32_t merged_id;
  };
  static constexpr uint32_t kNoRank = UINT32_MAX;

  void reserve(size_t count) {
    size_t capacity = 16;
    while (capacity < count + count / 2) capacity <<= 1;
    slots_.assign(capacity, Slot{kEmpty, {kNoRank, -1}});
    mask_ = capacity - 1;
  }
  // A pair listed twice keeps its last entry, as in `tokenizers` (and transformers.js).
  void insert(int32_t left, int32_t right, Merge merge) {
    uint64_t key = make_key(left, right);
    for (size_t i = mix64(key) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == kEmpty || slots_[i].key == key) {
        slots_[i] = Slot{key, merge};
        return;
      }
    }
  }
  const Merge* find(int32_t left, int32_t right) const {
    uint64_t key = make_key(left, right);
    for (size_t i = mix64(key) & mask_;; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.key == key) return &slot.merge;
      if (slot.key == kEmpty) return nullptr;
    }
  }
  uint32_t rank(int32_t left, int32_t right) const {
    const Merge* m = find(left, right);
    return m ? m->rank : kNoRank;
  }

 private:
  static constexpr uint64_t kEmpty = UINT64_MAX;
  static uint64_t make_key(int32_t left, int32_t right) {
    return (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
  }
  struct Slot {
    uint64_t key;
    Merge merge;
  };
  std::vector<Slot> slots_;  // [capacity], capacity a power of two
  size_t mask_ = 0;
};

// Byte string -> id. Keys live in one arena; a slot is 16 bytes (part of the hash, offset,
// length, id) and the table is kept at most ~2/3 full.
class StringIdTable {
 public:
  void reserve(size_t count, size_t total_bytes) {
    size_t capacity = 16;
    while (capacity < count + count / 2) capacity <<= 1;
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    arena_.reserve(total_bytes);
  }
  // Adds key -> id; a key that is already there gets the new id (the last entry wins, as
  // when `tokenizers` reads a JSON object with a repeated key).
  void insert(std::string_view key, int32_t id) {
    if ((size_ + 1) * 3 > slots_.size() * 2) grow();
    uint64_t h = hash_bytes(key);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& slot = slots_[i];
      if (slot.id < 0) {
        slot = Slot{uint32_t(h >> 32), uint32_t(arena_.size()), uint32_t(key.size()), id};
        arena_.append(key);
        ++size_;
        return;
      }
      if (slot.hash == uint32_t(h >> 32) && key_of(slot) == key) {
        slot.id = id;
        return;
      }
    }
  }
  int32_t find(std::string_view key) const {
    if (slots_.empty()) return -1;
    uint64_t h = hash_bytes(key);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& slot = slots_[i];
      if (slot.id < 0) return -1;
      if (slot.hash == uint32_t(h >> 32) && key_of(slot) == key) return slot.id;
    }
  }
  size_t size() const { return size_; }

 private:
  struct Slot {
    uint32_t hash = 0;  // high half of the 64-bit hash (the low half picks the slot)
    uint32_t offset = 0, length = 0;
    int32_t id = -1;
  };
  std::string_view key_of(const Slot& slot) const {
    return std::string_view(arena_).substr(slot.offset, slot.length);
  }
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    size_t capacity = old.empty() ? 16 : old.size() * 2;
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    for (const Slot& slot : old) {
      if (slot.id < 0) continue;
      size_t i = hash_bytes(key_of(slot)) & mask_;
      while (slots_[i].id >= 0) i = (i + 1) & mask_;
      slots_[i] = slot;
    }
  }
  std::vector<Slot> slots_;  // [capacity], capacity a power of two
  size_t mask_ = 0;
  size_t size_ = 0;
  std::string arena_;
};

}  // namespace hwledger::tokenizer
