// fault-proxy: an HTTP/1.1 reverse proxy on 127.0.0.1 in front of a real registry that breaks
// chosen responses the way a sick registry or network would, for kilnd's end-to-end tests.
//
//   fault-proxy --upstream 127.0.0.1:5000 --fault truncate --match /blobs/ [--times 1]
//
// Prints "listening on 127.0.0.1:PORT" once ready, and one line per request it forwards
// ("GET /v2/... range=bytes=100- -> 200 truncate"). Faults, applied to responses of GET
// requests whose target contains --match (at most --times of them; 0 = all):
//   status=N  answer N with a distribution-style error body instead of forwarding
//   truncate  promise the whole body (Content-Length) but send a quarter of it, then hang up
//   corrupt   send the whole body with one byte flipped
//   none      forward unchanged
#include <utility>  // boost/asio/awaitable.hpp needs std::exchange

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>

#include "CLI/CLI.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct Options {
  std::string upstream_host;
  std::string upstream_port;
  std::string fault = "none";
  std::string match = "/blobs/";
  int times = 0;
};

std::mutex g_log_mu;
void Log(const std::string& line) {
  std::lock_guard lock(g_log_mu);
  std::cout << line << std::endl;
}

class Proxy {
 public:
  explicit Proxy(Options o) : o_(std::move(o)) {}

  // Claims one use of the fault for a request, or returns "none".
  std::string FaultFor(const http::request<http::string_body>& req) {
    if (o_.fault == "none" || req.method() != http::verb::get) return "none";
    if (std::string(req.target()).find(o_.match) == std::string::npos) return "none";
    if (o_.times > 0 && used_.fetch_add(1) >= o_.times) return "none";
    return o_.fault;
  }

  void Serve(tcp::socket client) {
    beast::error_code ec;
    beast::flat_buffer buf;
    for (;;) {
      http::request<http::string_body> req;
      http::read(client, buf, req, ec);
      if (ec) return;
      const bool keep_alive = req.keep_alive();
      const std::string fault = FaultFor(req);
      std::string line = std::string(req.method_string()) + " " + std::string(req.target());
      if (auto r = req.find(http::field::range); r != req.end()) {
        line += " range=" + std::string(r->value());
      }
      if (fault.rfind("status=", 0) == 0) {
        http::response<http::string_body> res{static_cast<http::status>(std::stoi(fault.substr(7))),
                                              req.version()};
        res.set(http::field::content_type, "application/json");
        res.body() = R"({"errors":[{"code":"UNKNOWN","message":"injected by fault-proxy"}]})";
        res.keep_alive(keep_alive);
        res.prepare_payload();
        Log(line + " -> " + fault);
        http::write(client, res, ec);
        if (ec || !keep_alive) return;
        continue;
      }

      tcp::socket up(client.get_executor());
      tcp::resolver resolver(client.get_executor());
      asio::connect(up, resolver.resolve(o_.upstream_host, o_.upstream_port, ec), ec);
      if (ec) {
        Log(line + " -> upstream unreachable: " + ec.message());
        return;
      }
      req.keep_alive(false);
      http::write(up, req, ec);
      if (ec) return;
      beast::flat_buffer upbuf;
      http::response_parser<http::string_body> parser;
      parser.body_limit(1ull << 32);
      parser.skip(req.method() == http::verb::head);
      http::read(up, upbuf, parser, ec);
      if (ec) {
        Log(line + " -> upstream read failed: " + ec.message());
        return;
      }
      http::response<http::string_body> res = parser.release();
      Log(line + " -> " + std::to_string(res.result_int()) + " " + fault);
      res.keep_alive(keep_alive && fault != "truncate");
      if (res.result() != http::status::ok && res.result() != http::status::partial_content) {
        // Errors and redirects pass through untouched.
      } else if (fault == "corrupt" && !res.body().empty()) {
        res.body()[res.body().size() / 2] ^= 0x5a;
      } else if (fault == "truncate" && res.body().size() > 4) {
        // Headers with the full Content-Length, then a quarter of the body, then hang up.
        const std::string body = res.body();
        http::response_serializer<http::string_body> sr{res};
        http::write_header(client, sr, ec);
        if (!ec) asio::write(client, asio::buffer(body.data(), body.size() / 4), ec);
        client.shutdown(tcp::socket::shutdown_both, ec);
        return;
      }
      http::write(client, res, ec);
      if (ec || !res.keep_alive()) return;
    }
  }

 private:
  const Options o_;
  std::atomic<int> used_{0};
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"HTTP reverse proxy that injects registry faults (for tests)"};
  Options o;
  std::string upstream;
  app.add_option("--upstream", upstream, "HOST:PORT of the real registry")->required();
  app.add_option("--fault", o.fault, "none | status=N | truncate | corrupt")
      ->check([](const std::string& f) -> std::string {
        if (f == "none" || f == "truncate" || f == "corrupt") return "";
        if (f.rfind("status=", 0) == 0 && f.size() == 10 &&
            f.find_first_not_of("0123456789", 7) == std::string::npos) {
          return "";
        }
        return "unknown fault '" + f + "'";
      });
  app.add_option("--match", o.match, "only GET targets containing this");
  app.add_option("--times", o.times, "break at most this many responses (0 = every one)");
  CLI11_PARSE(app, argc, argv);
  const size_t colon = upstream.rfind(':');
  if (colon == std::string::npos) {
    std::cerr << "fault-proxy: --upstream must be HOST:PORT, got '" << upstream << "'\n";
    return 2;
  }
  o.upstream_host = upstream.substr(0, colon);
  o.upstream_port = upstream.substr(colon + 1);

  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  Proxy proxy(o);
  Log("listening on 127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()));
  for (;;) {
    tcp::socket s(io);
    beast::error_code ec;
    acceptor.accept(s, ec);
    if (ec) continue;
    std::thread([&proxy, s = std::move(s)]() mutable { proxy.Serve(std::move(s)); }).detach();
  }
}
