#include "base/ids.h"

#include <random>

namespace kiln {

std::string NewRandomId() {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 gen{std::random_device{}()};
  std::uniform_int_distribution<int> pick(0, sizeof(kAlphabet) - 2);
  std::string id;
  id.reserve(25);
  for (int i = 0; i < 25; ++i) id.push_back(kAlphabet[pick(gen)]);
  return id;
}

}  // namespace kiln
