// Placeholder: filled in by the tokenizer component.
#include "cli/commands.h"

namespace hwledger::cli {
void add_tokenizer_commands(CLI::App& app) { (void)app; }
}  // namespace hwledger::cli
