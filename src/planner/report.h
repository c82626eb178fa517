// Human output of a plan: a summary table, a stacked bar (weights | KV | runtime | prefill |
// free) against the device, a per-layer heatmap and a green/yellow/red verdict.
#pragma once
#include <cstdio>
#include <string>

#include "planner/memory_plan.h"

namespace hwledger::planner {

struct RenderStyle {
  bool color = false;         // ANSI colours: only when writing to a terminal
  bool unicode = true;        // block characters; ASCII otherwise
  int bar_width = 60;         // cells of the stacked bar
  int heat_width = 40;        // cells of the widest heatmap row
  size_t max_heat_rows = 64;  // more layers than this (100+) are bucketed
};

// Colour when `stream` is a terminal (and NO_COLOR is unset, TERM is not "dumb"); Unicode when
// the locale says UTF-8.
RenderStyle detect_style(std::FILE* stream);

std::string render_table(const MemoryPlan& plan, const DeviceFit& fit, const RenderStyle& style);
std::string render_stacked_bar(const MemoryPlan& plan, const DeviceFit& fit,
                               const RenderStyle& style);
std::string render_heatmap(const MemoryPlan& plan, const RenderStyle& style);
std::string render_verdict(const MemoryPlan& plan, const DeviceFit& fit, const RenderStyle& style);
// All of the above, and the plan's notes.
std::string render_report(const MemoryPlan& plan, const DeviceFit& fit, const RenderStyle& style);

// "8.03B", "596.05M", "754.56K", "1234".
std::string format_count(int64_t count);
// "8,030,261,248".
std::string group_digits(int64_t count);

}  // namespace hwledger::planner
