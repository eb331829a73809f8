#include "frontend/dockerfile/shell/internal/runes.h"

namespace kiln::dockerfile::shell::internal {

RuneText DecodeAll(std::string_view s) {
  RuneText text;
  text.runes.reserve(s.size());
  text.offsets.reserve(s.size() + 1);
  size_t pos = 0;
  while (pos < s.size()) {
    const gotext::DecodedRune d = gotext::DecodeRune(s.substr(pos));
    text.runes.push_back(d.rune);
    text.offsets.push_back(pos);
    pos += d.width;
  }
  text.offsets.push_back(s.size());
  return text;
}

std::string EncodeRunes(const std::vector<Rune>& runes) {
  std::string out;
  out.reserve(runes.size());
  for (Rune r : runes) gotext::AppendRune(&out, r);
  return out;
}

Rune RuneScanner::Read() {
  if (pos_ >= src_.size()) return kEof;
  const gotext::DecodedRune d = gotext::DecodeRune(src_.substr(pos_));
  pos_ += d.width;
  return d.rune;
}

Rune RuneScanner::Peek() {
  if (ch_ == kUnread) {
    ch_ = Read();
    if (ch_ == 0xFEFF) ch_ = Read();  // a byte order mark at the start is ignored
  }
  return ch_;
}

Rune RuneScanner::Next() {
  const Rune ch = Peek();
  if (ch != kEof) ch_ = Read();
  return ch;
}

}  // namespace kiln::dockerfile::shell::internal
