#include "cli/config.h"

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>

#include "util/error.h"

namespace hwledger::cli {

namespace {

// Plumbing between `serve` and its engine child, not settings: an inherited value would point
// a hand-started engine at a descriptor it does not have.
const std::set<std::string> kNoEnv = {"listen-fd", "conn-watch-fd", "config", "help", "version"};

std::string env_name(const std::string& long_name) {
  std::string env = "HWLEDGER_";
  for (char c : long_name)
    env += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return env;
}

template <typename Fn>
void for_each_app(CLI::App* app, const Fn& fn) {
  fn(app);
  for (CLI::App* sub : app->get_subcommands([](CLI::App*) { return true; })) for_each_app(sub, fn);
}

CLI::App* find_subcommand(CLI::App* app, const std::string& name) {
  for (CLI::App* sub : app->get_subcommands([](CLI::App*) { return true; }))
    if (sub->get_name() == name) return sub;
  return nullptr;
}

// Config keys may use '-' or '_' (TOML style): both name the same option.
std::string normalized(std::string key) {
  for (char& c : key)
    if (c == '_') c = '-';
  return key;
}

}  // namespace

void add_env_and_config(CLI::App& app) {
  for_each_app(&app, [](CLI::App* a) {
    // Read before parsing (apply_config_file); declared so that parsing accepts it.
    static std::string config_path;
    if (a->get_parent() != nullptr && a->get_option_no_throw("--config") == nullptr)
      a->add_option("--config", config_path,
                    "settings file, TOML/INI (README, 'Configuration'); command line and "
                    "environment win over it")
          ->envname("HWLEDGER_CONFIG");
    for (CLI::Option* opt : a->get_options()) {
      if (opt->get_lnames().empty() || !opt->get_envname().empty()) continue;
      const std::string& name = opt->get_lnames().front();
      if (kNoEnv.count(name) == 0) opt->envname(env_name(name));
    }
  });
}

void apply_config_file(CLI::App& app, int argc, const char* const* argv) {
  std::string path;
  std::vector<std::string> command;  // the subcommand path: {"bench", "agent-loop"}
  CLI::App* at = &app;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      path = argv[++i];
    } else if (arg.rfind("--config=", 0) == 0) {
      path = arg.substr(9);
    } else if (CLI::App* sub = find_subcommand(at, arg)) {
      at = sub;
      command.push_back(arg);
    }
  }
  if (path.empty()) {
    const char* env = std::getenv("HWLEDGER_CONFIG");
    if (env == nullptr || *env == '\0') return;
    path = env;
  }
  std::ifstream in(path);
  if (!in) fail_input("cannot read the config file '{}'", path);

  std::set<std::string> known;  // every long option name of every subcommand
  std::set<std::string> sections = {""};
  for_each_app(&app, [&](CLI::App* a) {
    for (CLI::Option* opt : a->get_options())
      for (const std::string& n : opt->get_lnames()) known.insert(n);
    std::string section;
    for (CLI::App* p = a; p->get_parent() != nullptr; p = p->get_parent())
      section = p->get_name() + (section.empty() ? "" : "." + section);
    sections.insert(section);
  });

  // Values by key; a deeper section that matches the running subcommand wins over the top.
  std::map<std::string, std::pair<size_t, std::string>> values;
  for (const CLI::ConfigItem& item : CLI::ConfigTOML().from_config(in)) {
    if (item.name == "--" || item.name == "++") continue;  // a section's end or start
    std::string section;
    for (const std::string& p : item.parents) section += (section.empty() ? "" : ".") + p;
    if (sections.count(section) == 0)
      fail_input("config file '{}': no subcommand '{}' for section [{}]", path, section, section);
    const std::string key = normalized(item.name);
    if (known.count(key) == 0 || kNoEnv.count(key) > 0)
      fail_input("config file '{}': '{}'{} is not an option of any subcommand", path, item.name,
                 section.empty() ? "" : " in [" + section + "]");
    // Applies only to the running subcommand or one of its parents.
    if (item.parents.size() > command.size() ||
        !std::equal(item.parents.begin(), item.parents.end(), command.begin()))
      continue;
    std::string value;
    for (const std::string& v : item.inputs) value += (value.empty() ? "" : ",") + v;
    auto& slot = values[key];
    if (slot.second.empty() || item.parents.size() >= slot.first)
      slot = {item.parents.size(), value};
  }
  for (const auto& [key, value] : values) {
    const std::string env = env_name(key);
    if (std::getenv(env.c_str()) == nullptr) ::setenv(env.c_str(), value.second.c_str(), 1);
  }
}

}  // namespace hwledger::cli
