#include "planner/report.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <clocale>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>

#include "util/size.h"

namespace hwledger::planner {

namespace {

constexpr const char* kReset = "\033[0m";
constexpr const char* kBold = "\033[1m";
constexpr const char* kDim = "\033[2m";

std::string paint(const RenderStyle& style, const std::string& code, const std::string& text) {
  return style.color ? code + text + kReset : text;
}

struct Segment {
  std::string label;
  uint64_t bytes;
  const char* color;          // ANSI foreground
  const char* glyph_unicode;  // used without colour so segments stay apart
  char glyph_ascii;
};

std::string repeat(const std::string& glyph, size_t count) {
  std::string out;
  out.reserve(glyph.size() * count);
  for (size_t i = 0; i < count; ++i) out += glyph;
  return out;
}

std::string percent(uint64_t part, uint64_t whole) {
  if (whole == 0) return "-";
  return fmt::format("{:.1f}%", 100.0 * double(part) / double(whole));
}

// A 256-colour ramp from green through yellow to red, for the heatmap.
int heat_color(double ratio) {
  static constexpr std::array<int, 11> ramp = {46, 82, 118, 154, 190, 226, 220, 214, 208, 202, 196};
  size_t i = size_t(std::clamp(ratio, 0.0, 1.0) * double(ramp.size() - 1) + 0.5);
  return ramp[i];
}

std::string kinds_summary(const MemoryPlan& plan) {
  std::map<std::string, int> kinds, ffns;
  for (const LayerMemory& layer : plan.layers) {
    ++kinds[std::string(to_string(layer.kind))];
    ++ffns[std::string(to_string(layer.ffn))];
  }
  std::string out;
  for (const auto& [kind, count] : kinds)
    out += fmt::format("{}{} {}", out.empty() ? "" : ", ", count, kind);
  std::string ffn_text;
  for (const auto& [ffn, count] : ffns)
    if (ffn != "none") ffn_text += fmt::format("{}{} {}", ffn_text.empty() ? "" : ", ", count, ffn);
  if (!ffn_text.empty()) out += "; feed-forward: " + ffn_text;
  return out;
}

}  // namespace

RenderStyle detect_style(std::FILE* stream) {
  RenderStyle style;
  const char* term = std::getenv("TERM");
  style.color = isatty(fileno(stream)) && !std::getenv("NO_COLOR") &&
                !(term && std::strcmp(term, "dumb") == 0);
  std::string locale;
  for (const char* name : {"LC_ALL", "LC_CTYPE", "LANG"})
    if (const char* value = std::getenv(name); value && *value) {
      locale = value;
      break;
    }
  std::transform(locale.begin(), locale.end(), locale.begin(), ::tolower);
  style.unicode =
      locale.find("utf-8") != std::string::npos || locale.find("utf8") != std::string::npos;
  return style;
}

std::string group_digits(int64_t count) {
  std::string digits = std::to_string(count), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0 && digits[i - 1] != '-') out += ',';
    out += digits[i];
  }
  return out;
}

std::string format_count(int64_t count) {
  if (count >= 1'000'000'000) return fmt::format("{:.2f}B", double(count) / 1e9);
  if (count >= 1'000'000) return fmt::format("{:.2f}M", double(count) / 1e6);
  if (count >= 10'000) return fmt::format("{:.2f}K", double(count) / 1e3);
  return fmt::format("{}", count);
}

std::string render_table(const MemoryPlan& plan, const DeviceFit& fit, const RenderStyle& style) {
  const PlanOptions& o = plan.options;
  std::string out;
  out += fmt::format("{} {} ({}), {} layers: {}\n", paint(style, kBold, "model  "),
                     plan.architecture, plan.model_type, plan.layers.size(), kinds_summary(plan));
  out += fmt::format(
      "{} {} ({} from {}{})\n", paint(style, kBold, "params "), format_count(plan.parameters),
      group_digits(plan.parameters),
      plan.parameters_source == "config" ? "config.json" : "the safetensors headers",
      plan.unplanned_parameters > 0
          ? fmt::format("; {} more not planned", format_count(plan.unplanned_parameters))
          : "");
  out +=
      fmt::format("{} ctx {} x {} user{}, weights {}, KV {}, prefill {} tokens/step\n\n",
                  paint(style, kBold, "plan   "), o.context_tokens, o.users,
                  o.users == 1 ? "" : "s", to_string(o.weights), to_string(o.kv_dtype),
                  std::min(o.prefill_chunk, o.context_tokens) *
                      (o.prefill_sequences > 0 ? std::min(o.prefill_sequences, o.users) : o.users));
  uint64_t layer_weights = 0;
  for (const LayerMemory& layer : plan.layers) layer_weights += layer.weights_bytes;
  auto row = [&](const std::string& name, uint64_t bytes, const std::string& detail) {
    out += fmt::format("  {:<22}{:>12}  {:>6}  {}\n", name, format_bytes(bytes),
                       percent(bytes, plan.total_bytes), detail);
  };
  out += paint(style, kDim,
               fmt::format("  {:<22}{:>12}  {:>6}  {}\n", "component", "bytes", "share", ""));
  row("weights", plan.weights_bytes, "");
  row("  layers", layer_weights, "");
  row("  embeddings", plan.embedding_bytes, format_count(plan.embedding_parameters) + " params");
  row("  lm_head", plan.lm_head_bytes,
      plan.tied_embeddings ? "tied to the embeddings"
                           : format_count(plan.lm_head_parameters) + " params");
  row("  other", plan.other_weights_bytes, "final norm etc.");
  std::string kv_detail;
  if (plan.kv_bytes_per_token > 0)
    kv_detail = fmt::format("{}/token/user", format_bytes(plan.kv_bytes_per_token));
  if (plan.state_bytes_per_sequence > 0)
    kv_detail += fmt::format("{}{}/user of fixed state", kv_detail.empty() ? "" : " + ",
                             format_bytes(plan.state_bytes_per_sequence));
  row("KV cache / state", plan.kv_bytes, kv_detail);
  row("runtime", plan.runtime_bytes, "base + logits and sampler per user");
  row("prefill activations", plan.prefill_bytes, "widest layer, one step");
  out +=
      paint(style, kBold, fmt::format("  {:<22}{:>12}\n", "total", format_bytes(plan.total_bytes)));
  out += fmt::format("  {:<22}{:>12}          {}\n", "device", format_bytes(fit.device_bytes),
                     fit.device_source);
  out += fmt::format("  {:<22}{:>12}\n", "free", format_bytes(fit.free_bytes));
  return out;
}

std::string render_stacked_bar(const MemoryPlan& plan, const DeviceFit& fit,
                               const RenderStyle& style) {
  const std::vector<Segment> segments = {
      {"weights", plan.weights_bytes, "\033[34m", "█", '#'},
      {"KV", plan.kv_bytes, "\033[35m", "▓", '='},
      {"runtime", plan.runtime_bytes, "\033[33m", "▒", '+'},
      {"prefill", plan.prefill_bytes, "\033[36m", "░", '-'},
      {"free", fit.free_bytes, "\033[32m", "·", '.'},
  };
  const int width = std::max(10, style.bar_width);
  // The bar spans the device, or the total when the plan does not fit.
  const double span = double(std::max(fit.device_bytes, plan.total_bytes));
  std::string bar;
  double cumulative = 0;
  int drawn = 0;
  for (const Segment& segment : segments) {
    cumulative += double(segment.bytes);
    const int end = int(std::lround(cumulative / span * width));
    const int cells = std::max(0, end - drawn);
    drawn += cells;
    const std::string glyph =
        style.color ? (style.unicode ? "█" : "#")
                    : (style.unicode ? segment.glyph_unicode : std::string(1, segment.glyph_ascii));
    bar += paint(style, segment.color, repeat(glyph, size_t(cells)));
  }
  std::string out =
      fmt::format("{}{}{}  {} {}\n", style.unicode ? "▕" : "[", bar, style.unicode ? "▏" : "]",
                  format_bytes(fit.device_bytes), "device");
  if (plan.total_bytes > fit.device_bytes) {
    const int device_cell = int(std::lround(double(fit.device_bytes) / span * width));
    out +=
        fmt::format(" {}{} device ends here; {} over\n", std::string(size_t(device_cell), ' '),
                    style.unicode ? "↑" : "^", format_bytes(plan.total_bytes - fit.device_bytes));
  }
  std::string legend;
  for (const Segment& segment : segments) {
    const std::string key = style.color ? paint(style, segment.color, style.unicode ? "█" : "#")
                                        : (style.unicode ? std::string(segment.glyph_unicode)
                                                         : std::string(1, segment.glyph_ascii));
    legend += fmt::format("{}{} {} {} ({})", legend.empty() ? " " : "  ", key, segment.label,
                          format_bytes(segment.bytes), percent(segment.bytes, fit.device_bytes));
  }
  return out + legend + "\n";
}

std::string render_heatmap(const MemoryPlan& plan, const RenderStyle& style) {
  struct Row {
    std::string label, kind, ffn;
    uint64_t weights = 0, kv = 0;
  };
  const size_t n = plan.layers.size();
  // One row per layer; 100+ layers are bucketed so the map stays on one screen.
  const size_t per_row = n >= 100 ? (n + style.max_heat_rows - 1) / style.max_heat_rows : 1;
  std::vector<Row> rows;
  for (size_t start = 0; start < n; start += per_row) {
    const size_t end = std::min(n, start + per_row);
    Row row;
    row.label = per_row == 1 ? fmt::format("{}", start) : fmt::format("{}-{}", start, end - 1);
    row.kind = std::string(to_string(plan.layers[start].kind));
    row.ffn = std::string(to_string(plan.layers[start].ffn));
    for (size_t i = start; i < end; ++i) {
      row.weights += plan.layers[i].weights_bytes;
      row.kv += plan.layers[i].kv_bytes;
      if (to_string(plan.layers[i].kind) != row.kind) row.kind = "mixed";
      if (to_string(plan.layers[i].ffn) != row.ffn) row.ffn = "mixed";
    }
    rows.push_back(row);
  }
  uint64_t widest = 1;
  for (const Row& row : rows) widest = std::max(widest, row.weights + row.kv);
  const std::string weight_glyph = style.unicode ? "█" : "#";
  const std::string kv_glyph = style.unicode ? "▓" : "=";
  std::string out = fmt::format("{}{:>7} {:<9} {:<5} {:>11} {:>11}  {} weights {} KV/state\n",
                                style.color ? kDim : "", per_row == 1 ? "layer" : "layers", "kind",
                                "ffn", "weights", "kv/state", weight_glyph, kv_glyph);
  if (style.color) out += kReset;
  for (const Row& row : rows) {
    const uint64_t total = row.weights + row.kv;
    const int cells = int(std::lround(double(total) / double(widest) * style.heat_width));
    const int kv_cells = total == 0 ? 0 : int(std::lround(double(row.kv) / double(total) * cells));
    std::string bar =
        repeat(weight_glyph, size_t(cells - kv_cells)) + repeat(kv_glyph, size_t(kv_cells));
    if (style.color)
      bar =
          fmt::format("\033[38;5;{}m{}{}", heat_color(double(total) / double(widest)), bar, kReset);
    out += fmt::format("{:>7} {:<9} {:<5} {:>11} {:>11}  {}\n", row.label, row.kind, row.ffn,
                       format_bytes(row.weights), format_bytes(row.kv), bar);
  }
  return out;
}

std::string render_verdict(const MemoryPlan& plan, const DeviceFit& fit, const RenderStyle& style) {
  const std::string used = fmt::format("{} of {} ({:.0f}%)", format_bytes(plan.total_bytes),
                                       format_bytes(fit.device_bytes), fit.used_fraction * 100);
  switch (fit.verdict) {
    case Verdict::kGreen:
      return paint(style, "\033[1;32m", "GREEN") +
             fmt::format("  fits with room: {}; green up to {:.0f}%\n", used, kGreenFraction * 100);
    case Verdict::kYellow:
      return paint(style, "\033[1;33m", "YELLOW") +
             fmt::format(
                 "  fits, but tight: {}; above {:.0f}% other programs and fragmentation "
                 "may push it over\n",
                 used, kGreenFraction * 100);
    case Verdict::kRed:
      return paint(style, "\033[1;31m", "RED") +
             fmt::format(
                 "  does not fit: {}, {} over; lower --ctx or --users, or quantize "
                 "(--weights, --kv-dtype)\n",
                 used, format_bytes(plan.total_bytes - fit.device_bytes));
  }
  return "";
}

std::string render_report(const MemoryPlan& plan, const DeviceFit& fit, const RenderStyle& style) {
  std::string out = render_table(plan, fit, style);
  out += "\n" + render_stacked_bar(plan, fit, style);
  out += "\n" + render_heatmap(plan, style);
  if (!plan.notes.empty()) {
    out += "\n";
    for (const std::string& note : plan.notes) out += paint(style, kDim, "note: ") + note + "\n";
  }
  out += "\n" + render_verdict(plan, fit, style);
  return out;
}

}  // namespace hwledger::planner
