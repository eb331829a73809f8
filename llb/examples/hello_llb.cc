// hello-llb: writes a small LLB Definition to stdout, like a Go program calling llb.WriteTo.
//
//   hello-llb | buildctl build --local context=DIR --output type=local,dest=OUT
//
// OUT then holds DIR's files, /hello.txt and an empty /out directory.

#include <unistd.h>

#include <cstdio>
#include <string>

#include "llb/llb.h"

namespace {

int Run() {
  using namespace kiln::llb;
  State context = Local("context");
  State result = Scratch()
                     .File(Copy(context, "/", "/",
                                {.copy_dir_contents_only = true,
                                 .create_dest_path = true,
                                 .allow_wildcard = true,
                                 .allow_empty_wildcard = true}))
                     .File(Mkfile("/hello.txt", 0644, "hello from kiln\n")
                               .Mkdir("/out", 0755, {.make_parents = true}),
                           {.custom_name = "write hello"});
  absl::StatusOr<pb::Definition> def = Marshal(result);
  if (!def.ok()) {
    std::fprintf(stderr, "hello-llb: %s\n", std::string(def.status().message()).c_str());
    return 1;
  }
  const std::string bytes = SerializeDefinition(*def);
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(STDOUT_FILENO, bytes.data() + written, bytes.size() - written);
    if (n < 0) {
      std::perror("hello-llb: write");
      return 1;
    }
    written += static_cast<size_t>(n);
  }
  return 0;
}

}  // namespace

int main() { return Run(); }
