// Writes an LLB definition of about N FileOp vertices to stdout, for the solver benchmark:
// `chains` independent chains of mkfile steps on scratch, merged at the end.
//   graph-llb [N=1000] [chains=10] | kiln build --output type=local,dest=OUT

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "llb/llb.h"

int main(int argc, char** argv) {
  using namespace kiln::llb;
  int n = argc > 1 ? std::atoi(argv[1]) : 1000;
  int chains = argc > 2 ? std::atoi(argv[2]) : 10;
  if (n < chains || chains < 1) {
    std::fprintf(stderr, "usage: graph-llb [N>=chains] [chains>=1]\n");
    return 2;
  }
  std::vector<State> tips;
  for (int c = 0; c < chains; ++c) {
    State s = Scratch();
    for (int i = 0; i < n / chains; ++i) {
      const std::string dir = "/c" + std::to_string(c);
      s = s.File(Mkdir(dir, 0755, {.make_parents = true})
                     .Mkfile(dir + "/f" + std::to_string(i), 0644,
                             "chain " + std::to_string(c) + " step " + std::to_string(i) + "\n"));
    }
    tips.push_back(s);
  }
  auto def = Marshal(Merge(tips));
  if (!def.ok()) {
    std::fprintf(stderr, "graph-llb: %s\n", std::string(def.status().message()).c_str());
    return 1;
  }
  std::string out;
  def->SerializeToString(&out);
  std::cout << out;
  return 0;
}
