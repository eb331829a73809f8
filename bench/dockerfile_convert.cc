// Dockerfile frontend conversion time: a generated Dockerfile of N instructions (default 500;
// several stages, every instruction kind, $VAR expansion, mounts and heredocs) through parse,
// dockerfile2llb and Marshal, repeated R times. Base images resolve instantly (a canned
// config), so this measures the frontend alone. Prints one figure a line.
//   dockerfile-convert [N=500] [R=20]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "frontend/dockerfile/convert/convert.h"
#include "llb/llb.h"

namespace {

std::string MakeDockerfile(int n) {
  std::string df = "# syntax=docker/dockerfile:1\nARG BASE=busybox:latest\n";
  int written = 2;
  int stage = 0;
  while (written < n) {
    df += "FROM ${BASE} AS s" + std::to_string(stage) + "\n";
    df += "ARG VERSION=1.0\nENV APP=/app" + std::to_string(stage) + " MODE=release\n";
    df += "WORKDIR $APP\n";
    written += 4;
    for (int i = 0; i < 40 && written < n; ++i, ++written) {
      switch (i % 8) {
        case 0:
          df += "RUN echo step " + std::to_string(i) + " $VERSION > f" + std::to_string(i) + "\n";
          break;
        case 1:
          df += "COPY --chown=1000:1000 src/file" + std::to_string(i) + " ./\n";
          break;
        case 2:
          df +=
              "RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=s \\\n    make -C "
              "${APP} target" +
              std::to_string(i) + "\n";
          break;
        case 3:
          df += "ENV STEP_" + std::to_string(i) + "=${MODE:-debug}_" + std::to_string(i) + "\n";
          break;
        case 4:
          df += "LABEL step" + std::to_string(i) + "=\"value ${VERSION}\"\n";
          break;
        case 5:
          df += "RUN <<EOF\necho heredoc " + std::to_string(i) + "\necho more\nEOF\n";
          break;
        case 6:
          df += (stage > 0 ? "COPY --from=s" + std::to_string(stage - 1) + " /app" +
                                 std::to_string(stage - 1) + " /prev/\n"
                           : "USER root\n");
          break;
        case 7:
          df += "EXPOSE 80" + std::to_string(i % 10) + "\n";
          break;
      }
    }
    ++stage;
  }
  df += "CMD [\"/bin/sh\"]\n";
  return df;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 500;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 20;
  const std::string df = MakeDockerfile(n);
  int lines = 0;
  for (char c : df) lines += c == '\n';
  kiln::dockerfile::ConvertOptions o;
  o.resolve = [](const std::string& ref,
                 const kiln::llb::Platform&) -> absl::StatusOr<kiln::dockerfile::ResolvedImage> {
    return kiln::dockerfile::ResolvedImage{
        .ref = ref,
        .digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        .config = R"({"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"]}})"};
  };
  size_t ops = 0;
  double best = 1e9, total = 0;
  for (int r = 0; r < rounds; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    auto conv = kiln::dockerfile::DockerfileToLlb(df, o);
    if (!conv.ok()) {
      std::fprintf(stderr, "convert: %s\n", std::string(conv.status().message()).c_str());
      return 1;
    }
    auto def = kiln::llb::Marshal(conv->state);
    if (!def.ok()) {
      std::fprintf(stderr, "marshal: %s\n", std::string(def.status().message()).c_str());
      return 1;
    }
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, ms);
    total += ms;
    ops = def->def_size();
  }
  std::printf("Dockerfile: %d instructions (%d lines), target stage: %zu LLB ops\n", n, lines, ops);
  std::printf("parse + convert + marshal: best %.2f ms, mean %.2f ms over %d rounds\n", best,
              total / rounds, rounds);
  return 0;
}
