#include "cli/commands.h"

namespace hwledger::cli {
void add_model_command(CLI::App& app) { (void)app; }
}  // namespace hwledger::cli
