#include "util/progress.h"

#include <unistd.h>

#include <cstdio>

#include "util/size.h"

namespace hwledger {

ProgressBar::ProgressBar(std::string label, uint64_t total)
    : label_(std::move(label)), total_(total), enabled_(::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()) {}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::update(uint64_t done) {
  if (!enabled_ || finished_ || total_ == 0) return;
  int permille = static_cast<int>(done * 1000 / total_);
  if (permille == last_permille_) return;
  last_permille_ = permille;
  constexpr int kWidth = 30;
  int fill = permille * kWidth / 1000;
  std::string bar(fill, '#');
  bar.resize(kWidth, '.');
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::fprintf(stderr, "\r%s [%s] %5.1f%% %s/%s %.1fs", label_.c_str(), bar.c_str(),
               permille / 10.0, format_bytes(done).c_str(), format_bytes(total_).c_str(), secs);
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (!enabled_ || finished_) return;
  finished_ = true;
  if (last_permille_ >= 0) std::fprintf(stderr, "\n");
}

}  // namespace hwledger
