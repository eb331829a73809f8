#pragma once
// One spdlog logger per module ("server", "cache", ...), all writing to stderr through one
// shared sink. Thread-safe: spdlog's registry and *_mt sinks lock internally.

#include <memory>
#include <string>

#include "spdlog/spdlog.h"

namespace kiln {

// Sets up the shared sink and the default level (debug when `debug`, info otherwise).
// Safe to call more than once; later calls only change the level.
void InitLogging(bool debug);

// Returns the logger for `module`, creating it on first use.
std::shared_ptr<spdlog::logger> Logger(const std::string& module);

}  // namespace kiln
