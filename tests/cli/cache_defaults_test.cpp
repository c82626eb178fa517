// `hwledger serve` keeps the prefix cache's RAM and SSD tiers on by default (the SSD tier in
// ~/.cache/hwledger/kv), so an agent's repeated prefix survives a restart with no flags; `0`
// turns a tier off. Runs the built program under a temporary HOME and reads /metrics.
#include <gtest/gtest.h>

#include <optional>

#include "serve_process.h"

namespace hwledger::test {
namespace {

const std::string kModel = std::string(HWLEDGER_SHARED_DIR) + "/golden/qwen3-tiny";

// hwledger_kv_cache_capacity_bytes{tier="..."} from /metrics, once the engine answers.
std::optional<double> capacity(int port, const std::string& tier) {
  const std::regex re("hwledger_kv_cache_capacity_bytes\\{tier=\"" + tier + "\"\\} ([0-9.e+]+)");
  for (int i = 0; i < 300; ++i) {
    std::smatch m;
    const std::string body = http_request(port, "GET", "/metrics");
    if (std::regex_search(body, m, re)) return std::stod(m[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return std::nullopt;
}

TEST(ServeCacheDefaults, RamAndSsdTiersAreOnWithNoFlags) {
  const fs::path home = temp_home("cache-on");
  {
    Serve serve(home, kModel, {});
    const int port = serve.port();
    ASSERT_GT(port, 0) << serve.read_log();
    const auto ssd = capacity(port, "ssd"), ram = capacity(port, "ram");
    ASSERT_TRUE(ssd && ram) << serve.read_log();
    EXPECT_GT(*ssd, 0);
    EXPECT_LE(*ssd, 16.0 * (1ull << 30));
    EXPECT_GT(*ram, 0);
    EXPECT_LE(*ram, 2.0 * (1ull << 30));
    EXPECT_TRUE(fs::is_directory(home / ".cache" / "hwledger" / "kv"));
  }
  fs::remove_all(home);
}

TEST(ServeCacheDefaults, ZeroTurnsATierOff) {
  const fs::path home = temp_home("cache-off");
  {
    Serve serve(home, kModel, {"--ssd-cache", "0", "--ram-cache", "0"});
    const int port = serve.port();
    ASSERT_GT(port, 0) << serve.read_log();
    const auto ssd = capacity(port, "ssd"), ram = capacity(port, "ram");
    ASSERT_TRUE(ssd && ram) << serve.read_log();
    EXPECT_EQ(*ssd, 0);
    EXPECT_EQ(*ram, 0);
  }
  fs::remove_all(home);
}

}  // namespace
}  // namespace hwledger::test
