#include "daemon/util/logging.h"

#include <mutex>

#include "spdlog/sinks/stdout_color_sinks.h"

namespace kiln {
namespace {

std::mutex g_mu;
spdlog::sink_ptr g_sink;  // guarded by g_mu
spdlog::level::level_enum g_level = spdlog::level::info;

spdlog::sink_ptr SinkLocked() {
  if (!g_sink) {
    g_sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    g_sink->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  }
  return g_sink;
}

}  // namespace

void InitLogging(bool debug) {
  std::lock_guard lock(g_mu);
  SinkLocked();
  g_level = debug ? spdlog::level::debug : spdlog::level::info;
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->set_level(g_level); });
}

std::shared_ptr<spdlog::logger> Logger(const std::string& module) {
  std::lock_guard lock(g_mu);
  if (auto existing = spdlog::get(module)) return existing;
  auto logger = std::make_shared<spdlog::logger>(module, SinkLocked());
  logger->set_level(g_level);
  spdlog::register_logger(logger);
  return logger;
}

}  // namespace kiln
