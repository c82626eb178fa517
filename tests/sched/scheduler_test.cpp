// The scheduler on the demo model: batching, chunking and the prefix cache never change what a
// request generates (greedy ids equal Engine::generate_greedy's), requests come and go between
// steps, cancellation frees KV blocks, bad requests and a full cache end only their own request.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "sched/scheduler.h"
#include "sched/text_stream.h"
#include "sched_test_support.h"

namespace hwledger {
namespace {

using testing::Gate;
using testing::RecordingSink;

std::unique_ptr<Engine> make_engine(bool prefix_cache = true, uint64_t kv_bytes = 32ull << 20) {
  EngineOptions o;
  o.threads = 2;
  o.max_context = 512;
  o.max_kv_bytes = kv_bytes;
  o.cache.enabled = prefix_cache;
  o.load.show_progress = false;
  return std::make_unique<Engine>(testing::demo_model_dir(), o);
}

SchedulerOptions options(int64_t max_running = 8, int64_t prefill_chunk = 16, int64_t max_queue = 64) {
  SchedulerOptions s;
  s.max_running = max_running;
  s.prefill_chunk = prefill_chunk;
  s.max_queue = max_queue;
  return s;
}

// Deterministic prompt ids below the demo's special tokens.
std::vector<int32_t> prompt_ids(size_t n, uint32_t seed) {
  std::vector<int32_t> ids;
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    ids.push_back(static_cast<int32_t>((x >> 8) % 1000));
  }
  return ids;
}

GenerateRequest request(std::string id, std::vector<int32_t> prompt, int64_t max_tokens) {
  GenerateRequest r;
  r.id = std::move(id);
  r.prompt = std::move(prompt);
  r.max_tokens = max_tokens;
  return r;
}

std::shared_ptr<RecordingSink> run_one(Scheduler& s, GenerateRequest r) {
  auto sink = std::make_shared<RecordingSink>();
  EXPECT_TRUE(s.submit(std::move(r), sink));
  EXPECT_TRUE(sink->wait());
  return sink;
}

TEST(Scheduler, GreedyEqualsEngineGenerateAndTheCacheChangesNothing) {
  auto engine = make_engine();
  const auto prompt = prompt_ids(70, 1);
  const auto expected = engine->generate_greedy(prompt, 40);
  Scheduler s(*engine, options());
  for (int round = 0; round < 2; ++round) {
    auto sink = run_one(s, request("a", prompt, 40));
    EXPECT_EQ(sink->tokens, expected) << "round " << round;
    EXPECT_EQ(sink->result.reason, StopReason::Length);
    EXPECT_EQ(sink->result.prompt_tokens, 70);
    EXPECT_EQ(sink->result.completion_tokens, 40);
    EXPECT_EQ(sink->done_calls, 1);
    for (size_t i = 0; i < sink->events.size(); ++i) EXPECT_EQ(sink->events[i].index, static_cast<int64_t>(i));
    // The second time, the prompt's full blocks come from the prefix cache.
    EXPECT_EQ(sink->result.cached_tokens, round == 0 ? 0 : 64);
    EXPECT_GE(sink->result.ttft_seconds, sink->result.queue_seconds);
    EXPECT_GE(sink->result.total_seconds, sink->result.ttft_seconds);
  }
  SchedulerStats st = s.stats();
  EXPECT_EQ(st.requests_total, 2);
  EXPECT_EQ(st.prompt_tokens_total, 140);
  EXPECT_EQ(st.cached_tokens_total, 64);
  EXPECT_EQ(st.generated_tokens_total, 80);
  EXPECT_EQ(st.running, 0);
  EXPECT_EQ(st.queued, 0);
}

TEST(Scheduler, EightConcurrentRequestsEqualTheirSoloRuns) {
  auto engine = make_engine(/*prefix_cache=*/false);
  const size_t lengths[8] = {5, 90, 17, 33, 64, 1, 120, 48};
  std::vector<std::vector<int32_t>> prompts, expected;
  for (int i = 0; i < 8; ++i) {
    prompts.push_back(prompt_ids(lengths[i], 100 + i));
    expected.push_back(engine->generate_greedy(prompts[i], 24 + i));
  }
  Scheduler s(*engine, options(/*max_running=*/8, /*prefill_chunk=*/32));
  std::vector<std::shared_ptr<RecordingSink>> sinks;
  for (int i = 0; i < 8; ++i) {
    sinks.push_back(std::make_shared<RecordingSink>());
    ASSERT_TRUE(s.submit(request("r" + std::to_string(i), prompts[i], 24 + i), sinks.back()));
  }
  for (int i = 0; i < 8; ++i) {
    ASSERT_TRUE(sinks[i]->wait());
    EXPECT_EQ(sinks[i]->tokens, expected[i]) << "request " << i;
    EXPECT_EQ(sinks[i]->result.reason, StopReason::Length);
  }
  EXPECT_EQ(engine->pool().free_blocks(), engine->pool().capacity());
}

TEST(Scheduler, SeededSamplingIsReproducibleWhateverTheBatch) {
  auto engine = make_engine();
  Scheduler s(*engine, options());
  auto sampled = [](uint64_t seed) {
    GenerateRequest r = request("", prompt_ids(20, 5), 30);
    r.sampling.temperature = 0.9f;
    r.sampling.top_p = 0.95f;
    r.sampling.top_k = 200;
    r.sampling.seed = seed;
    return r;
  };
  auto alone = run_one(s, sampled(7))->tokens;
  // Again, now sharing steps with three other requests.
  std::vector<std::shared_ptr<RecordingSink>> others;
  for (int i = 0; i < 3; ++i) {
    others.push_back(std::make_shared<RecordingSink>());
    ASSERT_TRUE(s.submit(request("", prompt_ids(40 + i, 9 + i), 30), others.back()));
  }
  auto batched = run_one(s, sampled(7))->tokens;
  for (auto& o : others) ASSERT_TRUE(o->wait());
  EXPECT_EQ(alone, batched);
  EXPECT_NE(alone, run_one(s, sampled(8))->tokens);
  GenerateRequest unseeded = sampled(0);
  unseeded.sampling.seed.reset();
  EXPECT_NE(run_one(s, unseeded)->tokens, run_one(s, unseeded)->tokens);
}

TEST(Scheduler, EosTokenEndsTheRequestAndIsNotEmitted) {
  auto engine = make_engine();
  const auto prompt = prompt_ids(12, 3);
  const auto greedy = engine->generate_greedy(prompt, 20);
  // Stop on the token greedy decoding produces at index 6 (its first occurrence).
  const int32_t eos = greedy[6];
  const size_t first = std::find(greedy.begin(), greedy.end(), eos) - greedy.begin();
  Scheduler s(*engine, options());
  GenerateRequest r = request("e", prompt, 20);
  r.stop_token_ids = {5000, eos};
  auto sink = run_one(s, r);
  EXPECT_EQ(sink->result.reason, StopReason::Eos);
  EXPECT_EQ(sink->tokens, std::vector<int32_t>(greedy.begin(), greedy.begin() + first));
  EXPECT_EQ(sink->result.completion_tokens, static_cast<int64_t>(first) + 1);  // EOS is counted
}

TEST(Scheduler, CancelEndsARunningRequestAndFreesItsBlocks) {
  auto engine = make_engine(/*prefix_cache=*/false);
  const int64_t capacity = engine->pool().capacity();
  Scheduler s(*engine, options(/*max_running=*/1));
  auto running = std::make_shared<RecordingSink>();
  Gate started, cancelled;
  running->on_token_hook = [&](const TokenEvent& ev) {
    if (ev.index == 3) {
      started.open();
      cancelled.wait();  // hold the loop until cancel() has been called
    }
    return true;
  };
  ASSERT_TRUE(s.submit(request("long", prompt_ids(100, 4), 400), running));
  auto queued = std::make_shared<RecordingSink>();
  ASSERT_TRUE(s.submit(request("queued", prompt_ids(10, 5), 5), queued));
  started.wait();
  EXPECT_LT(engine->pool().free_blocks(), capacity);
  EXPECT_TRUE(s.cancel("queued"));
  EXPECT_TRUE(s.cancel("long"));
  EXPECT_FALSE(s.cancel("nobody"));
  cancelled.open();
  ASSERT_TRUE(running->wait());
  ASSERT_TRUE(queued->wait());
  EXPECT_EQ(running->result.reason, StopReason::Cancelled);
  EXPECT_EQ(running->tokens.size(), 4u);
  EXPECT_EQ(queued->result.reason, StopReason::Cancelled);
  EXPECT_TRUE(queued->tokens.empty());
  EXPECT_EQ(queued->result.cached_tokens, 0);
  // Blocks are back before the next step; after on_done the id is free again.
  EXPECT_EQ(engine->pool().free_blocks(), capacity);
  EXPECT_FALSE(s.cancel("long"));
  EXPECT_EQ(run_one(s, request("long", prompt_ids(10, 6), 3))->result.reason, StopReason::Length);
}

TEST(Scheduler, SinkReturningFalseStopsTheRequest) {
  auto engine = make_engine();
  Scheduler s(*engine, options());
  auto sink = std::make_shared<RecordingSink>();
  sink->on_token_hook = [](const TokenEvent& ev) { return ev.index < 4; };
  ASSERT_TRUE(s.submit(request("x", prompt_ids(8, 7), 100), sink));
  ASSERT_TRUE(sink->wait());
  EXPECT_EQ(sink->result.reason, StopReason::Stop);
  EXPECT_EQ(sink->tokens.size(), 5u);
  EXPECT_EQ(sink->result.completion_tokens, 5);
}

TEST(Scheduler, FullQueueRefuses) {
  auto engine = make_engine();
  Scheduler s(*engine, options(/*max_running=*/1, 16, /*max_queue=*/2));
  Gate busy, release;
  auto first = std::make_shared<RecordingSink>();
  first->on_token_hook = [&](const TokenEvent& ev) {
    if (ev.index == 0) {
      busy.open();
      release.wait();
    }
    return true;
  };
  ASSERT_TRUE(s.submit(request("1", prompt_ids(8, 1), 4), first));
  busy.wait();  // "1" is running; the queue is empty
  std::vector<std::shared_ptr<RecordingSink>> waiting;
  for (int i = 0; i < 2; ++i) {
    waiting.push_back(std::make_shared<RecordingSink>());
    EXPECT_TRUE(s.submit(request("q" + std::to_string(i), prompt_ids(8, 2), 4), waiting.back()));
  }
  auto refused = std::make_shared<RecordingSink>();
  EXPECT_FALSE(s.submit(request("q2", prompt_ids(8, 3), 4), refused));
  SchedulerStats st = s.stats();
  EXPECT_EQ(st.queued, 2);
  EXPECT_EQ(st.running, 1);
  EXPECT_EQ(st.requests_rejected, 1);
  release.open();
  for (auto& w : waiting) ASSERT_TRUE(w->wait());
  EXPECT_TRUE(first->wait());
  EXPECT_EQ(refused->done_calls, 0) << "a refused request's sink is never called";
}

TEST(Scheduler, LongPromptIsPrefilledInChunksWhileAnotherRequestDecodes) {
  auto engine = make_engine(/*prefix_cache=*/false);
  Scheduler s(*engine, options(/*max_running=*/4, /*prefill_chunk=*/16));
  std::mutex mu;
  std::vector<std::string> log;  // event order across both requests
  auto decoder = std::make_shared<RecordingSink>();
  Gate decoding;
  decoder->on_token_hook = [&](const TokenEvent& ev) {
    std::lock_guard lock(mu);
    log.push_back("token");
    if (ev.index == 0) decoding.open();
    return true;
  };
  ASSERT_TRUE(s.submit(request("short", prompt_ids(6, 1), 60), decoder));
  decoding.wait();
  auto long_prompt = std::make_shared<RecordingSink>();
  long_prompt->on_progress_hook = [&](int64_t done, int64_t total) {
    std::lock_guard lock(mu);
    log.push_back("prefill");
  };
  const auto prompt = prompt_ids(200, 2);
  ASSERT_TRUE(s.submit(request("long", prompt, 5), long_prompt));
  ASSERT_TRUE(long_prompt->wait());
  ASSERT_TRUE(decoder->wait());
  // 200 tokens in chunks of at most 16: 13 steps, each reporting progress.
  ASSERT_EQ(long_prompt->progress.size(), 13u);
  int64_t previous = 0;
  for (auto [done, total] : long_prompt->progress) {
    EXPECT_EQ(total, 200);
    EXPECT_GT(done, previous);
    EXPECT_LE(done - previous, 16);
    previous = done;
  }
  EXPECT_EQ(previous, 200);
  // Between the first and the last chunk the other request kept streaming: one token per step.
  auto first = std::find(log.begin(), log.end(), "prefill");
  auto last = std::find(log.rbegin(), log.rend(), "prefill").base() - 1;
  EXPECT_GE(std::count(first, last, "token"), 12);
  // And chunking did not change the long request's tokens.
  EXPECT_EQ(long_prompt->tokens, engine->generate_greedy(prompt, 5));
}

TEST(Scheduler, APrefixReadFromSsdDoesNotStallOtherRequests) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("hwledger-sched-ssd-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  EngineOptions o;
  o.threads = 2;
  o.max_context = 512;
  o.max_kv_bytes = 32ull << 20;
  o.cache.ssd_bytes = 1ull << 30;
  o.cache.cache_dir = dir.string();
  o.load.show_progress = false;
  Engine engine(testing::demo_model_dir(), o);
  o.cache.restore_chunk_bytes = 2 * engine.kv_cache().layout().block_bytes();
  Engine cold(testing::demo_model_dir(), o);  // same options, its own reference
  const auto prompt = prompt_ids(480, 7);        // 14 full blocks
  {
    Scheduler warm(engine, options());
    run_one(warm, request("warm", prompt, 1));
  }
  engine.kv_cache().flush();
  // A restarted engine with a slow disk: 7 chunks of 2 blocks at 300 ms each.
  Engine restarted(testing::demo_model_dir(), o);
  restarted.kv_cache().set_read_delay_for_testing(std::chrono::milliseconds(300));
  Scheduler s(restarted, options(/*max_running=*/4, /*prefill_chunk=*/16));
  std::mutex mu;
  std::vector<std::chrono::steady_clock::time_point> token_times;
  auto decoder = std::make_shared<RecordingSink>();
  Gate decoding;
  decoder->on_token_hook = [&](const TokenEvent& ev) {
    {
      std::lock_guard lock(mu);
      token_times.push_back(std::chrono::steady_clock::now());
    }
    if (ev.index == 0) decoding.open();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // keeps it decoding past the restore
    return true;
  };
  ASSERT_TRUE(s.submit(request("short", prompt_ids(6, 1), 480), decoder));
  decoding.wait();
  auto reader = run_one(s, request("long", prompt, 3));
  ASSERT_TRUE(decoder->wait());
  EXPECT_EQ(reader->result.cached_tokens, 448);
  EXPECT_EQ(reader->tokens, cold.generate_greedy(prompt, 3));
  // The 2.1 s restore ran beside the decoder's steps: no gap of a second between its tokens.
  double longest_gap = 0;
  for (size_t i = 1; i < token_times.size(); ++i)
    longest_gap = std::max(longest_gap, std::chrono::duration<double>(token_times[i] - token_times[i - 1]).count());
  EXPECT_LT(longest_gap, 1.0);
  EXPECT_GT(std::chrono::duration<double>(token_times.back() - token_times.front()).count(), 2.1);
  fs::remove_all(dir);
}

TEST(Scheduler, StopStringsThroughTheSchedulerAreNeverEmitted) {
  auto engine = make_engine();
  auto tok = tokenizer::Tokenizer::load(testing::demo_model_dir());
  const auto prompt = tok.encode("Once upon a time, in a land of caches and keys,", false);
  // The text greedy decoding streams, without stops.
  std::string full;
  {
    TextStream plain(tok, {});
    for (int32_t id : engine->generate_greedy(prompt, 40)) full += plain.push(id);
    full += plain.finish();
  }
  ASSERT_GT(full.size(), 20u);
  // A stop string that starts in the middle of the text (on a character boundary).
  size_t at = full.size() / 2;
  while (at > 0 && (static_cast<unsigned char>(full[at]) & 0xC0) == 0x80) --at;
  size_t end = at + 1;
  while (end < full.size() && (end - at < 3 || (static_cast<unsigned char>(full[end]) & 0xC0) == 0x80)) ++end;
  const std::string stop = full.substr(at, end - at);
  const std::string expected = full.substr(0, full.find(stop));

  struct StreamingSink : RecordingSink {
    explicit StreamingSink(const tokenizer::Tokenizer& t, std::string stop) : stream(t, {std::move(stop)}) {
      on_token_hook = [this](const TokenEvent& ev) {
        text += stream.push(ev.token);
        return !stream.stopped();
      };
    }
    void on_done(const GenerateResult& r) override {
      if (!stream.stopped()) text += stream.finish();
      RecordingSink::on_done(r);
    }
    TextStream stream;
    std::string text;
  };
  Scheduler s(*engine, options());
  auto sink = std::make_shared<StreamingSink>(tok, stop);
  GenerateRequest r = request("s", prompt, 40);
  ASSERT_TRUE(s.submit(r, sink));
  ASSERT_TRUE(sink->wait());
  EXPECT_EQ(sink->result.reason, StopReason::Stop) << "stop " << stop;
  EXPECT_EQ(sink->text, expected);
  EXPECT_EQ(sink->text.find(stop), std::string::npos);
}

TEST(Scheduler, InvalidRequestsEndWithAnErrorThatSaysWhy) {
  auto engine = make_engine();
  Scheduler s(*engine, options());
  auto error_of = [&](GenerateRequest r) {
    auto sink = std::make_shared<RecordingSink>();
    EXPECT_TRUE(s.submit(std::move(r), sink));
    EXPECT_TRUE(sink->wait());
    EXPECT_EQ(sink->result.reason, StopReason::Error);
    EXPECT_TRUE(sink->tokens.empty());
    return sink->result.error;
  };
  EXPECT_EQ(error_of(request("a", {}, 5)), "the prompt is empty");
  EXPECT_EQ(error_of(request("b", {1, 2, 1024}, 5)),
            "prompt token 1024 at position 2 is outside the vocabulary (ids 0..1023)");
  EXPECT_NE(error_of(request("c", {-7}, 5)).find("-7"), std::string::npos);
  EXPECT_EQ(error_of(request("d", prompt_ids(100, 1), 413)),
            "prompt of 100 tokens plus max_tokens 413 exceeds the context of 512 tokens");
  EXPECT_EQ(error_of(request("e", {1}, 0)), "max_tokens must be at least 1 (got 0)");
  GenerateRequest bad_sampling = request("f", {1}, 5);
  bad_sampling.sampling.top_p = 0;
  EXPECT_NE(error_of(bad_sampling).find("top_p"), std::string::npos);
  // An id still in use by a live request.
  Gate release;
  auto holder = std::make_shared<RecordingSink>();
  holder->on_token_hook = [&](const TokenEvent&) {
    release.wait();
    return true;
  };
  ASSERT_TRUE(s.submit(request("dup", {1, 2, 3}, 2), holder));
  EXPECT_EQ(error_of(request("dup", {1}, 1)), "request id 'dup' is already in use");
  release.open();
  ASSERT_TRUE(holder->wait());
  EXPECT_EQ(holder->result.reason, StopReason::Length);
  // The exact context fits.
  EXPECT_EQ(run_one(s, request("g", prompt_ids(500, 2), 12))->result.reason, StopReason::Length);
}

// An engine whose KV cache holds `blocks` blocks of 32 tokens, without prefix caching.
std::unique_ptr<Engine> make_small_kv_engine(int64_t blocks) {
  auto probe = make_engine(false);
  const uint64_t block_bytes = probe->kv_cache().layout().block_bytes();
  probe.reset();
  auto engine = make_engine(/*prefix_cache=*/false, blocks * block_bytes);
  EXPECT_EQ(engine->pool().capacity(), blocks);
  return engine;
}

TEST(Scheduler, RequestLargerThanTheKvCacheIsRefusedUpFront) {
  auto engine = make_small_kv_engine(6);
  Scheduler s(*engine, options());
  auto sink = run_one(s, request("big", prompt_ids(300, 2), 10));
  EXPECT_EQ(sink->result.reason, StopReason::Error);
  EXPECT_EQ(sink->result.error,
            "prompt of 300 tokens plus max_tokens 10 needs 10 KV cache blocks of 32 tokens; the cache holds 6 "
            "(raise --max-kv-size or lower max_tokens)");
  // 6 blocks hold 192 tokens: the last generated token is never stored, so 150 + 43 fits.
  EXPECT_EQ(run_one(s, request("fits", prompt_ids(150, 2), 43))->result.reason, StopReason::Length);
}

TEST(Scheduler, PromptThatDoesNotFitBesideOthersWaitsForTheirBlocks) {
  // 6 blocks: "small" needs 2, "big" 6; big's prefill runs out, goes back to the queue and runs
  // once small has finished. Neither sees an error, and both generate what they do alone.
  auto engine = make_small_kv_engine(6);
  const auto small_prompt = prompt_ids(20, 1), big_prompt = prompt_ids(180, 2);
  const auto small_expected = engine->generate_greedy(small_prompt, 30);
  const auto big_expected = engine->generate_greedy(big_prompt, 5);
  Scheduler s(*engine, options(/*max_running=*/4, /*prefill_chunk=*/64));
  auto small = std::make_shared<RecordingSink>();
  auto big = std::make_shared<RecordingSink>();
  ASSERT_TRUE(s.submit(request("small", small_prompt, 30), small));
  ASSERT_TRUE(s.submit(request("big", big_prompt, 5), big));
  ASSERT_TRUE(big->wait());
  ASSERT_TRUE(small->wait());
  EXPECT_EQ(small->result.reason, StopReason::Length) << small->result.error;
  EXPECT_EQ(big->result.reason, StopReason::Length) << big->result.error;
  EXPECT_EQ(small->tokens, small_expected);
  EXPECT_EQ(big->tokens, big_expected);
  EXPECT_EQ(s.stats().prompt_tokens_total, 200) << "a requeued prompt is counted once";
  EXPECT_EQ(engine->pool().free_blocks(), 6);
}

TEST(Scheduler, DecodingSequenceTakesTheBlocksOfOneStillPrefilling) {
  // 6 blocks. "a" (60-token prompt) decodes; "b" (150 tokens) prefills 32 per step and holds 4
  // blocks when a needs its third: b yields its blocks, waits, and starts over after a.
  auto engine = make_small_kv_engine(6);
  const auto a_prompt = prompt_ids(60, 3), b_prompt = prompt_ids(150, 4);
  const auto a_expected = engine->generate_greedy(a_prompt, 100);
  const auto b_expected = engine->generate_greedy(b_prompt, 5);
  Scheduler s(*engine, options(/*max_running=*/4, /*prefill_chunk=*/32));
  auto a = std::make_shared<RecordingSink>(), b = std::make_shared<RecordingSink>();
  Gate first_token, b_submitted;
  a->on_token_hook = [&](const TokenEvent& ev) {
    if (ev.index == 0) {
      first_token.open();
      b_submitted.wait();  // b joins at the very next step
    }
    return true;
  };
  ASSERT_TRUE(s.submit(request("a", a_prompt, 100), a));
  first_token.wait();
  ASSERT_TRUE(s.submit(request("b", b_prompt, 5), b));
  b_submitted.open();
  ASSERT_TRUE(a->wait());
  ASSERT_TRUE(b->wait());
  EXPECT_EQ(a->result.reason, StopReason::Length) << a->result.error;
  EXPECT_EQ(b->result.reason, StopReason::Length) << b->result.error;
  EXPECT_EQ(a->tokens, a_expected);
  EXPECT_EQ(b->tokens, b_expected);
  // b's prefill progress restarted: 32, 64, 96, 128, then again from 32.
  ASSERT_GE(b->progress.size(), 5u);
  EXPECT_EQ(b->progress[3].first, 128);
  EXPECT_EQ(b->progress[4].first, 32);
  EXPECT_EQ(b->progress.back().first, 150);
}

TEST(Scheduler, DecodingSequenceThatCannotGrowEndsWithAnError) {
  // Two sequences that each fit alone (6 blocks) but not together: when the cache runs out,
  // the one that cannot grow ends with the cache's message and the other one carries on.
  auto engine = make_small_kv_engine(6);
  const auto p1 = prompt_ids(20, 5), p2 = prompt_ids(20, 6);
  Scheduler s(*engine, options());
  auto a = std::make_shared<RecordingSink>(), b = std::make_shared<RecordingSink>();
  ASSERT_TRUE(s.submit(request("a", p1, 150), a));
  ASSERT_TRUE(s.submit(request("b", p2, 150), b));
  ASSERT_TRUE(a->wait());
  ASSERT_TRUE(b->wait());
  const bool a_failed = a->result.reason == StopReason::Error;
  RecordingSink& failed = a_failed ? *a : *b;
  RecordingSink& survived = a_failed ? *b : *a;
  EXPECT_EQ(failed.result.reason, StopReason::Error);
  EXPECT_NE(failed.result.error.find("KV cache is full"), std::string::npos) << failed.result.error;
  EXPECT_EQ(survived.result.reason, StopReason::Length);
  EXPECT_EQ(survived.tokens, engine->generate_greedy(a_failed ? p2 : p1, 150));
  EXPECT_EQ(engine->pool().free_blocks(), 6);
}

TEST(Scheduler, DrainFinishesAdmittedRequestsThenRefuses) {
  auto engine = make_engine();
  Scheduler s(*engine, options(/*max_running=*/2));
  std::vector<std::shared_ptr<RecordingSink>> sinks;
  for (int i = 0; i < 4; ++i) {
    sinks.push_back(std::make_shared<RecordingSink>());
    ASSERT_TRUE(s.submit(request("", prompt_ids(10, i), 8), sinks.back()));
  }
  s.drain(120);
  for (auto& sink : sinks) {
    EXPECT_EQ(sink->done_calls, 1);
    EXPECT_EQ(sink->result.reason, StopReason::Length);
  }
  EXPECT_FALSE(s.submit(request("late", {1}, 1), std::make_shared<RecordingSink>()));
}

TEST(Scheduler, DrainDeadlineAndDestructorCancelTheRest) {
  auto engine = make_engine(/*prefix_cache=*/false);
  auto slow_sink = [] {
    auto sink = std::make_shared<RecordingSink>();
    sink->on_token_hook = [](const TokenEvent&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));  // 500 tokens: 2.5 s
      return true;
    };
    return sink;
  };
  {
    Scheduler s(*engine, options(/*max_running=*/1));
    auto a = slow_sink(), b = slow_sink();
    ASSERT_TRUE(s.submit(request("a", prompt_ids(10, 1), 500), a));
    ASSERT_TRUE(s.submit(request("b", prompt_ids(10, 2), 500), b));
    s.drain(0.05);
    EXPECT_EQ(a->done_calls, 1);
    EXPECT_EQ(a->result.reason, StopReason::Cancelled);
    EXPECT_EQ(b->result.reason, StopReason::Cancelled);
    EXPECT_EQ(engine->pool().free_blocks(), engine->pool().capacity());
  }
  auto c = slow_sink();
  {
    Scheduler s(*engine, options());
    ASSERT_TRUE(s.submit(request("c", prompt_ids(10, 3), 500), c));
  }
  EXPECT_EQ(c->done_calls, 1);
  EXPECT_EQ(c->result.reason, StopReason::Cancelled);
  EXPECT_EQ(engine->pool().free_blocks(), engine->pool().capacity());
}

TEST(Scheduler, LogprobsArriveWithTheTokens) {
  auto engine = make_engine();
  Scheduler s(*engine, options());
  GenerateRequest r = request("lp", prompt_ids(10, 1), 5);
  r.sampling.top_logprobs = 3;
  auto sink = run_one(s, r);
  ASSERT_EQ(sink->events.size(), 5u);
  for (const auto& ev : sink->events) {
    ASSERT_EQ(ev.top_logprobs.size(), 3u);
    EXPECT_EQ(ev.top_logprobs[0].first, ev.token);  // greedy: the chosen token is the best
    EXPECT_FLOAT_EQ(ev.top_logprobs[0].second, ev.logprob);
    EXPECT_LT(ev.logprob, 0.0f);
    EXPECT_GE(ev.top_logprobs[1].second, ev.top_logprobs[2].second);
  }
}

// Continuous batching: 8 requests submitted together decode in one shared forward pass per
// step, so they take about as many steps as one request alone, not 8 times as many. (Steps are
// counted, not timed: the aggregate tok/s is printed and recorded for information only; the
// speed-up is measured by benchmarks, docs/benchmarks.md. HWLEDGER_SCHED_BENCH_MODEL=<dir> runs
// it on a real-sized model, docs/scheduler.md.)
TEST(SchedulerThroughput, EightRequestsShareEachStep) {
  const char* model = std::getenv("HWLEDGER_SCHED_BENCH_MODEL");
  EngineOptions o;
  o.threads = 2;
  o.max_context = 1024;
  o.load.show_progress = false;
  o.cache.enabled = false;
  Engine engine(model ? model : testing::demo_model_dir(), o);
  const int64_t new_tokens = model ? 16 : 64;
  struct Run {
    double tok_s;
    int64_t steps;
  };
  auto run = [&](int n) {
    Scheduler s(engine, options(/*max_running=*/8, /*prefill_chunk=*/256));
    std::vector<std::shared_ptr<RecordingSink>> sinks;
    // Time decode only: start the clock at the last request's first token.
    std::atomic<int> first_tokens{0};
    std::chrono::steady_clock::time_point start;
    for (int i = 0; i < n; ++i) {
      auto sink = std::make_shared<RecordingSink>();
      sink->on_token_hook = [&](const TokenEvent& ev) {
        if (ev.index == 0 && ++first_tokens == n) start = std::chrono::steady_clock::now();
        return true;
      };
      sinks.push_back(sink);
      EXPECT_TRUE(s.submit(request("", prompt_ids(16, i), new_tokens), sink));
    }
    for (auto& sink : sinks) {
      EXPECT_TRUE(sink->wait(600));
      EXPECT_EQ(sink->result.completion_tokens, new_tokens);
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return Run{n * (new_tokens - 1) / secs, s.stats().steps_total};
  };
  run(1);  // warm up
  const Run one = run(1), eight = run(8);
  std::printf("scheduler decode: 1 sequence %.1f tok/s in %lld steps, 8 sequences %.1f tok/s in %lld "
              "steps (%.2fx)\n",
              one.tok_s, static_cast<long long>(one.steps), eight.tok_s,
              static_cast<long long>(eight.steps), eight.tok_s / one.tok_s);
  RecordProperty("tok_s_1", std::to_string(one.tok_s));
  RecordProperty("tok_s_8", std::to_string(eight.tok_s));
  EXPECT_GE(one.steps, new_tokens);
  // Requests admitted a step or two apart add a few steps; unbatched they would take 8x.
  EXPECT_LE(eight.steps, one.steps + 8) << "8 requests did not share their steps";
}

}  // namespace
}  // namespace hwledger
