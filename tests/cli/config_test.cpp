// Every option of every subcommand reads an HWLEDGER_* variable and may be set in a config file
// (--config / HWLEDGER_CONFIG); the command line wins over the environment, which wins over the
// file. Runs the built program.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>

namespace {

using nlohmann::json;

const std::string kBinary = std::string(HWLEDGER_BINARY_DIR) + "/hwledger";
const std::string kConfigJson = std::string(HWLEDGER_SHARED_DIR) + "/golden/qwen3-tiny/config.json";

struct Result {
  int code = -1;
  std::string out;  // stdout and stderr
};

// Runs `hwledger args` under `env -i` with only PATH, HOME and `env` set, so that the tester's
// own HWLEDGER_* variables cannot leak in.
Result run(const std::string& args, const std::string& env = "") {
  std::string cmd =
      "env -i PATH=/usr/bin:/bin HOME=/tmp " + env + " " + kBinary + " " + args + " 2>&1";
  Result r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string write_config(const std::string& name, const std::string& text) {
  auto dir =
      std::filesystem::temp_directory_path() / ("hwledger-cli-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::string path = (dir / name).string();
  std::ofstream(path) << text;
  return path;
}

json plan_options(const Result& r) {
  json j = json::parse(r.out.substr(std::min(r.out.find('{'), r.out.size())), nullptr, false);
  return j.is_object() ? j["options"] : json();
}

TEST(CliConfig, CommandLineBeatsEnvironmentBeatsConfigFile) {
  const std::string cfg = write_config("prec.toml",
                                       "# plan settings\n"
                                       "ctx = 1000\n"
                                       "users = 2\n"
                                       "kv-dtype = \"bf16\"\n");
  Result r = run("plan --json --model " + kConfigJson + " --config " + cfg + " --kv-dtype q8_0",
                 "HWLEDGER_USERS=3");
  ASSERT_EQ(r.code, 0) << r.out;
  json o = plan_options(r);
  EXPECT_EQ(o["ctx"], 1000) << "from the file";
  EXPECT_EQ(o["users"], 3) << "the environment beats the file";
  EXPECT_EQ(o["kv_dtype"], "q8_0") << "the command line beats the file";

  r = run("plan --json --model " + kConfigJson + " --config " + cfg + " --ctx 3000",
          "HWLEDGER_CTX=2000");
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(plan_options(r)["ctx"], 3000) << "the command line beats the environment";
}

TEST(CliConfig, HwledgerConfigNamesTheFileAndSectionsApplyToTheirSubcommand) {
  const std::string cfg = write_config("sections.ini",
                                       "ctx = 1000\n"
                                       "users = 2\n"
                                       "[plan]\n"
                                       "users = 4\n"
                                       "[serve]\n"
                                       "ctx = 9999\n"
                                       "port = 9000\n");
  Result r = run("plan --json --model " + kConfigJson, "HWLEDGER_CONFIG=" + cfg);
  ASSERT_EQ(r.code, 0) << r.out;
  json o = plan_options(r);
  EXPECT_EQ(o["users"], 4) << "[plan] wins over the top of the file";
  EXPECT_EQ(o["ctx"], 1000) << "[serve] does not apply to plan";
}

TEST(CliConfig, AMistakeInTheFileIsAnErrorThatNamesIt) {
  Result r = run("plan --json --model " + kConfigJson + " --config " +
                 write_config("typo.toml", "ctxx = 1000\n"));
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("'ctxx' is not an option"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("typo.toml"), std::string::npos) << r.out;

  r = run("plan --json --model " + kConfigJson + " --config /nonexistent/hw.toml");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("/nonexistent/hw.toml"), std::string::npos) << r.out;

  r = run("plan --json --model " + kConfigJson + " --config " +
          write_config("bad.toml", "ctx = \"lots\"\n"));
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("lots"), std::string::npos) << r.out;
}

// Every option in every subcommand's --help shows its environment variable, except the
// plumbing between `serve` and its engine child and --config itself.
TEST(CliConfig, EveryOptionOfEverySubcommandHasAnEnvironmentVariable) {
  const std::vector<std::string> commands = {
      "run",      "verify",     "model synth",      "bench model", "bench agent-loop", "bench http",
      "tokenize", "detokenize", "verify-tokenizer", "plan",        "engine",           "serve"};
  const std::regex option(R"(^  (?:-\w,)?--([a-z0-9-]+)(.*)$)");
  for (const std::string& c : commands) {
    Result r = run(c + " --help");
    ASSERT_EQ(r.code, 0) << c << "\n" << r.out;
    std::istringstream lines(r.out);
    int checked = 0;
    for (std::string line; std::getline(lines, line);) {
      std::smatch m;
      if (!std::regex_match(line, m, option)) continue;
      const std::string name = m[1];
      if (name == "help" || name == "config" || name == "listen-fd" || name == "conn-watch-fd")
        continue;
      ++checked;
      std::string want = "HWLEDGER_";
      for (char ch : name) want += ch == '-' ? '_' : static_cast<char>(std::toupper(ch));
      EXPECT_NE(line.find("(Env:" + want + ")"), std::string::npos)
          << "hwledger " << c << ": --" << name << " has no environment variable: " << line;
    }
    EXPECT_GT(checked, 0) << c << "\n" << r.out;
    EXPECT_NE(r.out.find("--config"), std::string::npos) << c;
  }
}

// A serve option from the file reaches the supervisor (the port it listens on).
TEST(CliConfig, ServeTakesItsPortFromTheFile) {
  const std::string cfg = write_config("serve.toml", "[serve]\nport = 1\nhost = \"256.0.0.1\"\n");
  // An address that cannot be bound proves the values were read, without starting an engine.
  Result r = run("serve --model demo --config " + cfg);
  EXPECT_NE(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("256.0.0.1"), std::string::npos) << r.out;
}

}  // namespace
