// One entry per architecture (llama.cpp style: one file each). Each reads the fields that
// only its architecture has, after the common decoder fields are parsed.
#pragma once
#include "model/config.h"

namespace hwledger::arch {
extern const ArchSpec kLlama;
extern const ArchSpec kMistral;
extern const ArchSpec kQwen2;
extern const ArchSpec kQwen3;
}  // namespace hwledger::arch
