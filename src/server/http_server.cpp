#include "server/http_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <map>
#include <mutex>
#include <utility>

#include "server/api.h"
#include "server/backend.h"
#include "server/conn_watch.h"
#include "server/metrics.h"
#include "server/session.h"
#include "server/socket_util.h"
#include "util/error.h"

namespace hwledger::server {

namespace {

using httplib::DataSink;
using httplib::Request;
using httplib::Response;

constexpr auto kPollInterval = std::chrono::milliseconds(100);

// Set on a connection's thread when it is one more than max_connections allows.
thread_local bool tl_over_capacity = false;
// The connection's id in the reports to the supervisor (0: not reported), and whether a request
// of it has been reported and not yet answered.
thread_local uint64_t tl_conn = 0;
thread_local bool tl_busy = false;

// cpp-httplib runs each connection as one task of this queue, on one thread for its whole life:
// enough threads for max_connections streams at once, and a few spare ones that only turn the
// connections beyond the cap away (503) instead of leaving them waiting unanswered.
class ConnectionPool final : public httplib::TaskQueue {
 public:
  static constexpr int kSpareThreads = 4;

  ConnectionPool(int max_connections, Metrics& metrics, ConnectionWatch& watch)
      : max_(max_connections),
        metrics_(metrics),
        watch_(watch),
        pool_(static_cast<size_t>(max_connections + kSpareThreads)) {}

  void enqueue(std::function<void()> fn) override {
    pool_.enqueue([this, fn = std::move(fn)] {
      const int64_t open = ++metrics_.connections_open;
      tl_over_capacity = open > max_;
      if (tl_over_capacity) ++metrics_.connections_rejected;
      fn();  // serves the connection, then closes it
      watch_.closed(std::exchange(tl_conn, 0));
      tl_busy = false;
      tl_over_capacity = false;
      --metrics_.connections_open;
    });
  }

  void shutdown() override { pool_.shutdown(); }

 private:
  int max_;
  Metrics& metrics_;
  ConnectionWatch& watch_;
  httplib::ThreadPool pool_;
};

// Lets the server accept on a socket someone else bound.
class Listener final : public httplib::Server {
 public:
  void adopt_socket(int fd) { svr_sock_ = fd; }
  int socket() const { return svr_sock_; }
};

bool is_anthropic_path(const std::string& path) {
  return path.rfind("/v1/messages", 0) == 0;
}

ApiFlavor flavor_of(const std::string& path) {
  return is_anthropic_path(path) ? ApiFlavor::Anthropic : ApiFlavor::OpenAI;
}

std::string route_label(const std::string& path) {
  static const char* const kRoutes[] = {"/health",
                                        "/metrics",
                                        "/v1/models",
                                        "/v1/completions",
                                        "/v1/chat/completions",
                                        "/v1/messages",
                                        "/v1/messages/count_tokens"};
  for (const char* r : kRoutes)
    if (path == r) return r;
  if (path.rfind("/v1/models/", 0) == 0) return "/v1/models/{id}";
  return "other";
}

void write_error(Response& res, const ApiError& error, ApiFlavor flavor) {
  res.status = http_status(error.kind(), flavor);
  if (error.kind() == ErrorKind::Overloaded) res.set_header("Retry-After", "1");
  res.set_content(error_body(error, flavor), "application/json");
}

// Constant-time comparison: the key must not leak through timing.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.empty() ? 1 : b.size())]);
  return diff == 0;
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

struct HttpServer::Impl {
  using ExchangeFactory = std::unique_ptr<Exchange> (*)(const Json&, const ServingBackend&);

  ServingBackend& backend;
  ServerOptions opts;
  Metrics metrics;
  ConnectionWatch watch;
  Listener svr;
  Clock::time_point started = Clock::now();
  int64_t created_unix = unix_now();
  std::atomic<int> port{-1};
  std::atomic<bool> stopping{false};
  std::atomic<bool> served{false};    // serve*() was called
  std::atomic<bool> finished{false};  // and returned
  std::atomic<uint64_t> next_id{0};

  std::mutex mu;
  std::condition_variable cv;
  std::map<std::string, std::shared_ptr<GenerationSession>> live;  // generations in flight

  Impl(ServingBackend& b, const ServerOptions& o) : backend(b), opts(o), watch(o.watch_fd) {
    if (opts.max_connections < 1)
      fail_input("max_connections must be at least 1 (got {})", opts.max_connections);
    if (opts.max_body_bytes < 1) fail_input("max_body_bytes must be positive");
    setup();
  }

  // ---- plumbing -------------------------------------------------------------------------------

  void setup() {
    std::signal(SIGPIPE, SIG_IGN);  // a client that left must not kill the process mid-write
    svr.new_task_queue = [this] {
      return new ConnectionPool(opts.max_connections, metrics, watch);
    };
    svr.set_payload_max_length(opts.max_body_bytes);
    svr.set_tcp_nodelay(true);
    const auto idle = static_cast<time_t>(std::max(1.0, opts.idle_timeout_s));
    svr.set_keep_alive_timeout(idle);
    svr.set_keep_alive_max_count(100000);
    svr.set_read_timeout(std::min<time_t>(idle, 30));
    svr.set_write_timeout(30);

    // The supervisor answers for a request whose engine died: tell it what each connection is
    // doing (conn_watch.h). The logger runs once the response is out.
    svr.set_pre_routing_handler([this](const Request& req, Response&) {
      if (watch.enabled()) {
        if (tl_conn == 0)
          tl_conn = watch.opened(
              find_connection_socket(req.local_port, req.remote_addr, req.remote_port));
        watch.request(tl_conn, flavor_of(req.path));
        tl_busy = true;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    svr.set_logger([this](const Request& req, const Response& res) {
      metrics.count_request(route_label(req.path), res.status);
      if (std::exchange(tl_busy, false)) watch.idle(tl_conn);
    });
    // cpp-httplib's own refusals (unknown route, oversized or malformed request) in each API's
    // shape.
    svr.set_error_handler(httplib::Server::HandlerWithResponse([this](const Request& req,
                                                                      Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // ours already
      const ApiFlavor flavor = flavor_of(req.path);
      switch (res.status) {
        case 404:
          write_error(res,
                      ApiError(ErrorKind::NotFound,
                               fmt::format("no route for {} {}", req.method, req.path)),
                      flavor);
          break;
        case 413:
          write_error(
              res,
              ApiError(ErrorKind::RequestTooLarge,
                       fmt::format("the request body is larger than the server's limit of {} bytes",
                                   opts.max_body_bytes)),
              flavor);
          break;
        case 400:
          write_error(res, ApiError(ErrorKind::InvalidRequest, "malformed HTTP request"), flavor);
          break;
        default: {
          const int status = res.status;
          write_error(res, ApiError(ErrorKind::Internal, fmt::format("HTTP error {}", status)),
                      flavor);
          res.status = status;
        }
      }
      return httplib::Server::HandlerResponse::Handled;
    }));
    svr.set_exception_handler(
        [](const Request& req, Response& res, std::exception_ptr ep) {  // NOLINT
          std::string what = "unknown error";
          try {
            std::rethrow_exception(ep);
          } catch (const std::exception& e) {
            what = e.what();
          } catch (...) {
          }
          spdlog::error("{} {}: {}", req.method, req.path, what);
          write_error(res, ApiError(ErrorKind::Internal, "internal error: " + what),
                      flavor_of(req.path));
        });

    svr.Get("/health", [this](const Request&, Response& res) {
      res.set_content(dump(health()), "application/json");
    });
    svr.Get("/metrics", [this](const Request& req, Response& res) {
      guarded(req, res, ApiFlavor::OpenAI,
              [&] { res.set_content(metrics_text(), "text/plain; version=0.0.4; charset=utf-8"); });
    });
    svr.Get("/v1/models", [this](const Request& req, Response& res) {
      guarded(req, res, ApiFlavor::OpenAI, [&] {
        res.set_content(openai_models_body(backend, created_unix), "application/json");
      });
    });
    svr.Get(R"(/v1/models/(.+))", [this](const Request& req, Response& res) {
      guarded(req, res, ApiFlavor::OpenAI, [&] {
        res.set_content(openai_model_body(backend, req.matches[1].str(), created_unix),
                        "application/json");
      });
    });
    svr.Post("/v1/chat/completions", [this](const Request& req, Response& res) {
      generate(req, res, ApiFlavor::OpenAI, &openai_chat_exchange);
    });
    svr.Post("/v1/completions", [this](const Request& req, Response& res) {
      generate(req, res, ApiFlavor::OpenAI, &openai_completion_exchange);
    });
    svr.Post("/v1/messages", [this](const Request& req, Response& res) {
      generate(req, res, ApiFlavor::Anthropic, &anthropic_messages_exchange);
    });
    svr.Post("/v1/messages/count_tokens", [this](const Request& req, Response& res) {
      guarded(req, res, ApiFlavor::Anthropic, [&] {
        const Json body = parse_json_body(req.body);
        res.set_content(anthropic_count_tokens_body(body, backend), "application/json");
      });
    });
  }

  // Connection cap and API key, then `fn`; ApiErrors become the flavor's error response.
  template <typename Fn>
  void guarded(const Request& req, Response& res, ApiFlavor flavor, Fn&& fn) {
    try {
      if (tl_over_capacity) {
        res.set_header("Connection", "close");
        throw ApiError(ErrorKind::Overloaded,
                       fmt::format("too many connections: this server takes {} at once",
                                   opts.max_connections));
      }
      check_key(req);
      fn();
    } catch (const ApiError& e) {
      write_error(res, e, flavor);
    }
  }

  void check_key(const Request& req) const {
    if (opts.api_key.empty()) return;
    std::string given = req.get_header_value("x-api-key");
    if (given.empty()) {
      const std::string auth = req.get_header_value("Authorization");
      if (auth.rfind("Bearer ", 0) == 0) given = auth.substr(7);
    }
    if (given.empty())
      throw ApiError(
          ErrorKind::Authentication,
          "missing API key: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'", {},
          "invalid_api_key");
    if (!same_secret(given, opts.api_key))
      throw ApiError(ErrorKind::Authentication, "invalid API key", {}, "invalid_api_key");
  }

  // ---- generations ----------------------------------------------------------------------------

  void generate(const Request& req, Response& res, ApiFlavor flavor, ExchangeFactory make) {
    const Clock::time_point arrival = Clock::now();
    guarded(req, res, flavor, [&] {
      if (stopping) throw ApiError(ErrorKind::Overloaded, "the server is shutting down");
      const Json body = parse_json_body(req.body);
      std::shared_ptr<Exchange> exchange = make(body, backend);
      const GenerationPlan& plan = exchange->plan();
      GenerateRequest request = plan.request;
      request.id = fmt::format("http-{}", ++next_id);
      auto session =
          std::make_shared<GenerationSession>(request.id, *backend.tokenizer(), plan.stop_strings,
                                              plan.want_logprobs, metrics, arrival);
      enlist(session);
      if (!backend.submit(std::move(request), session)) {
        delist(session->id());
        ++metrics.queue_rejections;
        throw ApiError(ErrorKind::Overloaded, "the server's request queue is full; retry shortly");
      }
      auto reply = std::make_shared<Reply>(plan.tool_format, exchange->tool_id_prefix());
      if (!plan.forced_prefix.empty()) reply->prime(plan.forced_prefix);
      const Clock::time_point deadline =
          arrival + std::chrono::duration_cast<Clock::duration>(
                        std::chrono::duration<double>(opts.request_timeout_s));
      if (plan.stream)
        stream(res, exchange, session, reply, deadline);
      else
        respond(req, res, *exchange, session, *reply, deadline);
    });
  }

  void enlist(const std::shared_ptr<GenerationSession>& session) {
    std::lock_guard lock(mu);
    live[session->id()] = session;
    ++metrics.generations_active;
  }

  void delist(const std::string& id) {
    {
      std::lock_guard lock(mu);
      if (live.erase(id)) --metrics.generations_active;
    }
    cv.notify_all();
  }

  // Non-streaming: wait here (the connection's thread) for the whole answer, watching for the
  // client leaving and the deadline.
  void respond(const Request& req, Response& res, Exchange& exchange,
               const std::shared_ptr<GenerationSession>& session, Reply& reply,
               Clock::time_point deadline) {
    struct Delist {
      Impl& impl;
      std::string id;
      ~Delist() { impl.delist(id); }
    } delist_on_exit{*this, session->id()};
    const int fd = find_connection_socket(req.local_port, req.remote_addr, req.remote_port);
    bool cancelled = false, timed_out = false;
    std::vector<SessionEvent> events;
    std::vector<OutputEvent> ignored;
    while (!reply.done()) {
      events.clear();
      ignored.clear();
      session->take(events, kPollInterval);
      reply.add(events, ignored);
      if (reply.done() || cancelled) continue;
      if (fd >= 0 && peer_closed(fd)) {
        cancelled = true;
        ++metrics.client_disconnects;
        backend.cancel(session->id());
      } else if (Clock::now() > deadline) {
        cancelled = timed_out = true;
        ++metrics.request_timeouts;
        backend.cancel(session->id());
      }
    }
    metrics.count_finish(finish_label(reply, timed_out, cancelled && !timed_out));
    if (reply.result().reason == StopReason::Error)
      throw ApiError(ErrorKind::Internal, "the generation failed: " + reply.result().error);
    if (timed_out)
      throw ApiError(ErrorKind::Timeout,
                     fmt::format("the generation did not finish within the request timeout of {} s",
                                 opts.request_timeout_s));
    res.set_content(exchange.response_body(reply), "application/json");
  }

  static std::string finish_label(const Reply& reply, bool timed_out, bool disconnected) {
    if (timed_out) return "timeout";
    if (disconnected) return "client_disconnect";
    return stop_reason_name(reply.result().reason);
  }

  // Streaming: cpp-httplib calls pump() on the connection's thread until the stream ends.
  struct Stream {
    Impl& impl;
    std::shared_ptr<Exchange> exchange;
    std::shared_ptr<GenerationSession> session;
    std::shared_ptr<Reply> reply;
    Clock::time_point deadline;
    Clock::time_point last_write = Clock::now();
    bool started = false, finished = false, abandoned = false, timed_out = false;

    bool write(DataSink& sink, const std::string& text) {
      if (text.empty()) return true;  // an empty write would end cpp-httplib's stream
      if (!sink.write(text.data(), text.size())) return false;
      last_write = Clock::now();
      return true;
    }

    bool abandon() {  // the client is gone: free the slot now
      if (!abandoned && !session->done()) {
        abandoned = true;
        ++impl.metrics.client_disconnects;
        impl.backend.cancel(session->id());
      }
      return false;
    }

    bool pump(DataSink& sink) {
      if (!started) {
        started = true;
        impl.watch.streaming(tl_conn);  // cpp-httplib wrote the headers before this call
        if (!write(sink, exchange->stream_start())) return abandon();
      }
      std::vector<SessionEvent> events;
      if (session->take(events, kPollInterval)) {
        std::vector<OutputEvent> out;
        reply->add(events, out);
        if (!write(sink, exchange->stream_events(out, *reply))) return abandon();
        if (reply->done()) {
          std::string end;
          if (reply->result().reason == StopReason::Error)
            end = exchange->stream_error(
                ApiError(ErrorKind::Internal, "the generation failed: " + reply->result().error));
          else if (timed_out)
            end = exchange->stream_error(ApiError(
                ErrorKind::Timeout,
                fmt::format("the generation did not finish within the request timeout of {} s",
                            impl.opts.request_timeout_s)));
          else
            end = exchange->stream_end(*reply);
          impl.metrics.count_finish(finish_label(*reply, timed_out, false));
          finished = true;
          if (!write(sink, end)) return false;
          sink.done();
          return true;
        }
      }
      if (!sink.is_writable()) return abandon();
      const Clock::time_point now = Clock::now();
      if (!timed_out && now > deadline) {
        timed_out = true;
        ++impl.metrics.request_timeouts;
        impl.backend.cancel(session->id());
      }
      if (std::chrono::duration<double>(now - last_write).count() >= impl.opts.ping_interval_s &&
          !write(sink, exchange->stream_ping()))
        return abandon();
      return true;
    }

    void release() {
      if (!finished) {
        abandon();
        impl.metrics.count_finish("client_disconnect");
      }
      impl.delist(session->id());
    }
  };

  void stream(Response& res, std::shared_ptr<Exchange> exchange,
              std::shared_ptr<GenerationSession> session, std::shared_ptr<Reply> reply,
              Clock::time_point deadline) {
    auto state = std::make_shared<Stream>(
        Stream{*this, std::move(exchange), std::move(session), std::move(reply), deadline});
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream", [state](size_t, DataSink& sink) { return state->pump(sink); },
        [state](bool) { state->release(); });
  }

  // ---- status ---------------------------------------------------------------------------------

  nlohmann::json health() const {
    const SchedulerStats s = backend.scheduler_stats();
    return {{"status", stopping ? "stopping" : "ok"},
            {"model", backend.model_name()},
            {"uptime_s", seconds_since(started)},
            {"context_length", backend.context_length()},
            {"queued", s.queued},
            {"running", s.running}};
  }

  std::string metrics_text() const {
    return metrics.render(backend.scheduler_stats(), backend.kv_stats(), seconds_since(started));
  }

  // ---- lifecycle ------------------------------------------------------------------------------

  // Binds itself rather than through cpp-httplib, whose listen backlog of 5 drops connections
  // when dozens of clients connect at once.
  int bind() {
    if (port >= 0) return port;
    const int fd = listen_socket(opts.host, opts.port);
    svr.adopt_socket(fd);
    port = socket_local_port(fd);
    return port;
  }

  void run() {
    if (stopping) return;
    served = true;
    spdlog::info("serving '{}' over HTTP on {}:{}", backend.model_name(), opts.host, port.load());
    svr.listen_after_bind();
    finished = true;
  }

  void stop(double drain_timeout_s) {
    if (stopping.exchange(true)) return;
    {
      std::unique_lock lock(mu);
      const auto drain = std::chrono::duration<double>(std::max(0.0, drain_timeout_s));
      if (!cv.wait_for(lock, drain, [&] { return live.empty(); })) {
        spdlog::warn("stopping: cancelling {} unfinished generation(s)", live.size());
        for (const auto& [id, session] : live) backend.cancel(id);
        cv.wait_for(lock, std::chrono::seconds(10), [&] { return live.empty(); });
      }
    }
    // A serve*() that is just starting must be running before cpp-httplib can stop it.
    for (int i = 0; i < 200 && served && !finished && !svr.is_running(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    svr.stop();
    // Idle keep-alive connections would hold their threads until the idle timeout.
    if (port >= 0) shutdown_connections(port);
  }
};

HttpServer::HttpServer(ModelContext& model, const ServerOptions& options)
    : owned_backend_(make_model_backend(model)) {
  impl_ = std::make_unique<Impl>(*owned_backend_, options);
}

HttpServer::HttpServer(ServingBackend& backend, const ServerOptions& options)
    : impl_(std::make_unique<Impl>(backend, options)) {}

HttpServer::~HttpServer() {
  if (impl_->svr.is_running()) impl_->stop(0);
}

void HttpServer::serve_fd(int listen_fd) {
  impl_->svr.adopt_socket(listen_fd);
  impl_->port = socket_local_port(listen_fd);
  impl_->run();
}

void HttpServer::serve() {
  impl_->bind();
  impl_->run();
}

int HttpServer::bind() {
  return impl_->bind();
}
int HttpServer::bound_port() const {
  return impl_->port;
}
bool HttpServer::is_running() const {
  return impl_->svr.is_running();
}
void HttpServer::stop(double drain_timeout_s) {
  impl_->stop(drain_timeout_s);
}
nlohmann::json HttpServer::health() const {
  return impl_->health();
}
std::string HttpServer::metrics_text() const {
  return impl_->metrics_text();
}

}  // namespace hwledger::server
