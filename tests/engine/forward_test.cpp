// The forward pass gives the reference logits however the tokens arrive: in one prefill, in
// chunks, one at a time (decode), or batched with other sequences.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "engine/engine.h"
#include "engine/test_models.h"
#include "model/safetensors.h"
#include "util/error.h"

namespace hwledger {
namespace {

const std::string kModel = HWLEDGER_SHARED_DIR "/golden/qwen3-tiny";

struct Reference {
  SafetensorsFile file{kModel + "/reference.safetensors"};
  std::vector<int32_t> ids(const std::string& c) const {
    Tensor t = file.tensor("ids_" + c);
    return std::vector<int32_t>(t.as<int32_t>(), t.as<int32_t>() + t.numel());
  }
  const float* logits(const std::string& c) const { return file.tensor("logits_" + c).as<float>(); }
};

double rel_err(const float* a, const float* b, int64_t n) {
  double md = 0, mr = 0;
  for (int64_t i = 0; i < n; ++i) {
    md = std::max(md, std::fabs(double(a[i]) - b[i]));
    mr = std::max(mr, std::fabs(double(b[i])));
  }
  return md / mr;
}

std::unique_ptr<Engine> make_engine(int threads) {
  EngineOptions o;
  o.threads = threads;
  o.kv_dtype = DType::F32;
  o.load.show_progress = false;
  return std::make_unique<Engine>(kModel, o);
}

// Runs `ids` through the model in pieces of the given sizes, collecting all logits.
std::vector<float> run_in_chunks(Engine& e, const std::vector<int32_t>& ids, std::vector<size_t> sizes) {
  KVSequence seq;
  std::vector<float> all;
  size_t at = 0;
  for (size_t k = 0; at < ids.size(); ++k) {
    size_t n = std::min(k < sizes.size() ? sizes[k] : ids.size(), ids.size() - at);
    BatchItem item{&seq, std::span<const int32_t>(ids.data() + at, n), BatchItem::Logits::All};
    auto& l = e.runner().forward(std::span<BatchItem>(&item, 1));
    all.insert(all.end(), l.begin(), l.end());
    at += n;
  }
  EXPECT_EQ(seq.n_tokens, static_cast<int64_t>(ids.size()));
  release_sequence(e.pool(), seq);
  return all;
}

TEST(Forward, ChunkedPrefillMatchesReference) {
  Reference ref;
  auto e = make_engine(2);
  auto ids = ref.ids("long");
  const int64_t V = e->config().vocab_size;
  auto whole = run_in_chunks(*e, ids, {ids.size()});
  auto chunked = run_in_chunks(*e, ids, {1, 31, 100, 64});
  ASSERT_EQ(chunked.size(), ids.size() * V);
  EXPECT_LT(rel_err(chunked.data(), ref.logits("long"), ids.size() * V), 1e-3);
  EXPECT_LT(rel_err(chunked.data(), whole.data(), ids.size() * V), 1e-5);
}

TEST(Forward, TokenByTokenDecodeMatchesReference) {
  Reference ref;
  auto e = make_engine(2);
  auto ids = ref.ids("medium");
  auto stepwise = run_in_chunks(*e, ids, std::vector<size_t>(ids.size(), 1));
  EXPECT_LT(rel_err(stepwise.data(), ref.logits("medium"), stepwise.size()), 1e-3);
}

TEST(Forward, BatchedSequencesMatchSeparateRuns) {
  Reference ref;
  auto e = make_engine(2);
  auto a = ref.ids("long"), b = ref.ids("medium"), c = ref.ids("short");
  const int64_t V = e->config().vocab_size;
  KVSequence sa, sb, sc;
  std::vector<BatchItem> batch = {{&sa, a, BatchItem::Logits::Last},
                                  {&sb, b, BatchItem::Logits::All},
                                  {&sc, c, BatchItem::Logits::None}};
  auto logits = e->runner().forward(batch);
  ASSERT_EQ(logits.size(), static_cast<size_t>((1 + b.size()) * V));
  EXPECT_LT(rel_err(logits.data(), ref.logits("long") + (a.size() - 1) * V, V), 1e-3);
  EXPECT_LT(rel_err(logits.data() + V, ref.logits("medium"), b.size() * V), 1e-3);
  // Then one decode step for all three at once, each at its own position.
  int32_t next[3] = {5, 6, 7};
  std::vector<BatchItem> step = {{&sa, {&next[0], 1}}, {&sb, {&next[1], 1}}, {&sc, {&next[2], 1}}};
  auto batched = e->runner().forward(step);
  for (int i = 0; i < 3; ++i) {
    KVSequence solo;
    std::vector<int32_t> ids = i == 0 ? a : i == 1 ? b : c;
    ids.push_back(next[i]);
    BatchItem item{&solo, ids, BatchItem::Logits::Last};
    auto& l = e->runner().forward(std::span<BatchItem>(&item, 1));
    EXPECT_LT(rel_err(batched.data() + i * V, l.data(), V), 1e-5) << "sequence " << i;
    release_sequence(e->pool(), solo);
  }
  for (auto* s : {&sa, &sb, &sc}) release_sequence(e->pool(), *s);
  EXPECT_EQ(e->pool().free_blocks(), e->pool().capacity());
}

TEST(Forward, ThreadCountDoesNotChangeResults) {
  Reference ref;
  auto ids = ref.ids("medium");
  auto one = run_in_chunks(*make_engine(1), ids, {ids.size()});
  auto three = run_in_chunks(*make_engine(3), ids, {ids.size()});
  EXPECT_LT(rel_err(three.data(), one.data(), one.size()), 1e-5);
}

TEST(Forward, OutOfVocabularyTokenIsAnInputError) {
  auto e = make_engine(1);
  KVSequence seq;
  std::vector<int32_t> ids = {1, 2, static_cast<int32_t>(e->config().vocab_size)};
  BatchItem item{&seq, ids, BatchItem::Logits::Last};
  EXPECT_THROW(e->runner().forward(std::span<BatchItem>(&item, 1)), InputError);
  release_sequence(e->pool(), seq);
}

TEST(Forward, ContextOverflowIsRefused) {
  EngineOptions o;
  o.threads = 1;
  o.max_context = 64;
  o.load.show_progress = false;
  Engine e(kModel, o);
  std::vector<int32_t> prompt(60, 3);
  EXPECT_THROW(e.generate_greedy(prompt, 10), InputError);
}

}  // namespace
}  // namespace hwledger
