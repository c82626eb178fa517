// SHA-256 through OpenSSL's EVP interface (hardware SHA extensions where present).
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace hwledger {

using Digest256 = std::array<uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  Sha256& update(const void* data, size_t len);
  Sha256& update(std::string_view s) { return update(s.data(), s.size()); }
  Digest256 finish();

 private:
  void* ctx_;
};

Digest256 sha256(const void* data, size_t len);
std::string to_hex(const uint8_t* data, size_t len);
inline std::string to_hex(const Digest256& d) { return to_hex(d.data(), d.size()); }

}  // namespace hwledger
