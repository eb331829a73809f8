#pragma once
// A plain HTTP/1.1 server for tests, in the test process: one thread on 127.0.0.1:<free port>
// answering one request per connection with what `handler` returns, and recording every
// request it saw. Header-only; Boost.Beast. Thread-safe.

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace kiln::testing {

class TestHttpServer {
 public:
  struct Request {
    std::string method;
    std::string target;
    std::map<std::string, std::string> headers;  // lowercase names
    std::string Header(const std::string& name) const {
      auto it = headers.find(name);
      return it == headers.end() ? "" : it->second;
    }
  };
  struct Reply {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
  };
  using Handler = std::function<Reply(const Request&)>;

  static absl::StatusOr<std::unique_ptr<TestHttpServer>> Start(Handler handler) {
    std::unique_ptr<TestHttpServer> s(new TestHttpServer(std::move(handler)));
    namespace ip = boost::asio::ip;
    boost::system::error_code ec;
    ip::tcp::endpoint ep(ip::make_address("127.0.0.1"), 0);
    s->acceptor_.open(ep.protocol(), ec);
    if (!ec) s->acceptor_.bind(ep, ec);
    if (!ec) s->acceptor_.listen(16, ec);
    if (ec) return absl::InternalError(absl::StrCat("test http server: ", ec.message()));
    s->port_ = s->acceptor_.local_endpoint().port();
    s->thread_ = std::thread([p = s.get()] { p->Serve(); });
    return s;
  }

  ~TestHttpServer() {
    stop_ = true;
    // Wake the blocking accept with a connection of our own.
    boost::system::error_code ec;
    boost::asio::ip::tcp::socket wake(io_);
    wake.connect({boost::asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port_)}, ec);
    if (thread_.joinable()) thread_.join();
    wake.close(ec);
    acceptor_.close(ec);
  }

  int port() const { return port_; }
  std::string Url(const std::string& path) const {
    return absl::StrCat("http://127.0.0.1:", port_, path);
  }
  std::vector<Request> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }
  void SetHandler(Handler handler) {
    std::lock_guard lock(mu_);
    handler_ = std::move(handler);
  }

 private:
  explicit TestHttpServer(Handler handler) : handler_(std::move(handler)), acceptor_(io_) {}

  void Serve() {
    namespace http = boost::beast::http;
    while (!stop_) {
      boost::system::error_code ec;
      boost::asio::ip::tcp::socket socket(io_);
      acceptor_.accept(socket, ec);
      if (ec || stop_) continue;
      boost::beast::flat_buffer buffer;
      http::request<http::string_body> req;
      http::read(socket, buffer, req, ec);
      if (ec) continue;
      Request seen{.method = std::string(req.method_string()), .target = std::string(req.target())};
      for (const auto& f : req) {
        seen.headers[absl::AsciiStrToLower(std::string(f.name_string()))] = std::string(f.value());
      }
      Handler handler;
      {
        std::lock_guard lock(mu_);
        requests_.push_back(seen);
        handler = handler_;
      }
      Reply reply = handler(seen);
      http::response<http::string_body> res;
      res.version(11);
      res.result(static_cast<unsigned>(reply.status));
      for (const auto& [k, v] : reply.headers) res.set(k, v);
      res.body() = std::move(reply.body);
      res.keep_alive(false);
      res.prepare_payload();
      http::write(socket, res, ec);
      socket.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    }
  }

  boost::asio::io_context io_;
  mutable std::mutex mu_;
  Handler handler_;                // guarded by mu_
  std::vector<Request> requests_;  // guarded by mu_
  boost::asio::ip::tcp::acceptor acceptor_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace kiln::testing
