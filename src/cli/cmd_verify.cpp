#include "cli/commands.h"

namespace hwledger::cli {
void add_verify_command(CLI::App& app) { (void)app; }
}  // namespace hwledger::cli
