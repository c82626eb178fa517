// Placeholder: filled in by the plan component.
#include "cli/commands.h"

namespace hwledger::cli {
void add_plan_command(CLI::App& app) { (void)app; }
}  // namespace hwledger::cli
