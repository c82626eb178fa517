// Human sizes: "512M", "8G", "1.5GiB", "4096" (bytes).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace hwledger {

// Parses a size; K/M/G/T (with optional "i" and "B") are powers of 1024. Throws InputError.
uint64_t parse_size(std::string_view text);

// Formats bytes for people: "1.19 GB" style with binary units ("1.11 GiB").
std::string format_bytes(uint64_t bytes);

}  // namespace hwledger
