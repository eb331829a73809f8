#include "frontend/dockerfile/parser/internal/heredoc.h"

#include <cstdint>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/go_text.h"
#include "base/status.h"

namespace kiln::dockerfile::parser::internal {
namespace {

constexpr int32_t kEOF = -1;
constexpr char kEscape = '\\';

struct Token {
  int32_t rune = kEOF;
  std::string_view bytes;  // the source bytes of the rune (empty at EOF)
};

// Word splitting state (shell.wordsStruct). `buf` is shared by nested lexing calls, exactly as
// BuildKit shares its words buffer (a nested ${...} resets the word gathered so far).
struct Words {
  std::string* buf;
  std::vector<std::string> words;
  bool in_word = false;

  void AddRaw(std::string_view bytes) {
    buf->append(bytes);
    in_word = true;
  }
  void AddChar(int32_t rune, std::string_view bytes) {
    const bool space = gotext::IsSpace(rune);
    if (space && in_word) {
      if (!buf->empty()) {
        words.push_back(*buf);
        buf->clear();
        in_word = false;
      }
    } else if (!space) {
      AddRaw(bytes);
    }
  }
  void AddString(std::string_view s) {
    size_t pos = 0;
    while (pos < s.size()) {
      const gotext::DecodedRune d = gotext::DecodeRune(s.substr(pos));
      AddChar(d.rune, s.substr(pos, d.width));
      pos += d.width;
    }
  }
  std::vector<std::string> Get() {
    if (!buf->empty()) {
      words.push_back(*buf);
      buf->clear();
      in_word = false;
    }
    return std::move(words);
  }
};

bool IsDigitRune(int32_t r) { return r >= '0' && r <= '9'; }
bool IsLetterRune(int32_t r) {
  return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') ||
         (r >= 0xC0 && r != 0xD7 && r != 0xF7 && r != 0xFFFD && !gotext::IsSpace(r));
}
bool IsSpecialParam(int32_t r) {
  switch (r) {
    case '@':
    case '*':
    case '#':
    case '?':
    case '-':
    case '$':
    case '!':
    case '0':
      return true;
    default:
      return false;
  }
}

std::string RuneString(const Token& t) {
  if (t.rune == kEOF) return "\xEF\xBF\xBD";  // Go's string(rune(-1))
  return std::string(t.bytes);
}

class Lexer {
 public:
  Lexer(std::string_view src, LexOptions options)
      : src_(src), raw_quotes_(options.raw_quotes), raw_escapes_(options.raw_escapes) {}

  absl::StatusOr<std::vector<std::string>> ProcessWords() {
    auto r = ProcessStopOn(kEOF, raw_escapes_);
    if (!r.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("failed to process ", gotext::Quote(src_), ": ", r.status().message()));
    }
    return std::move(r->second);
  }

 private:
  int32_t Peek() const {
    if (pos_ >= src_.size()) return kEOF;
    return gotext::DecodeRune(src_.substr(pos_)).rune;
  }
  Token Next() {
    Token t;
    if (pos_ >= src_.size()) return t;
    const gotext::DecodedRune d = gotext::DecodeRune(src_.substr(pos_));
    t.rune = d.rune;
    t.bytes = src_.substr(pos_, d.width);
    pos_ += d.width;
    return t;
  }

  absl::StatusOr<std::pair<std::string, std::vector<std::string>>> ProcessStopOn(int32_t stop,
                                                                                 bool raw_escapes) {
    std::string result;
    words_buffer_.clear();
    Words words{&words_buffer_};
    const bool saved = raw_escapes_;
    raw_escapes_ = raw_escapes;
    struct Restore {
      bool* target;
      bool value;
      ~Restore() { *target = value; }
    } restore{&raw_escapes_, saved};

    while (Peek() != kEOF) {
      const int32_t ch = Peek();
      if (stop != kEOF && ch == stop) {
        Next();
        return std::make_pair(std::move(result), words.Get());
      }
      if (ch == '$' || ch == '<' || ch == '\'' || ch == '"') {
        absl::StatusOr<std::string> tmp;
        if (ch == '$') {
          tmp = ProcessDollar();
        } else if (ch == '<') {
          tmp = ProcessPossibleHeredoc();
        } else if (ch == '\'') {
          tmp = ProcessSingleQuote();
        } else {
          tmp = ProcessDoubleQuote();
        }
        if (!tmp.ok()) return tmp.status();
        result += *tmp;
        if (ch == '$') {
          words.AddString(*tmp);
        } else {
          words.AddRaw(*tmp);
        }
        continue;
      }
      Token t = Next();
      if (t.rune == kEscape) {
        if (raw_escapes_) {
          words.AddRaw(t.bytes);
          result += t.bytes;
        }
        t = Next();
        if (t.rune == kEOF) break;
        words.AddRaw(t.bytes);
      } else {
        words.AddChar(t.rune, t.bytes);
      }
      result += t.bytes;
    }
    if (stop != kEOF) {
      std::string stop_str(1, static_cast<char>(stop));
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected end of statement while looking for matching ", stop_str));
    }
    return std::make_pair(std::move(result), words.Get());
  }

  absl::StatusOr<std::string> ProcessSingleQuote() {
    std::string result;
    Token t = Next();
    if (raw_quotes_) result += t.bytes;
    for (;;) {
      t = Next();
      if (t.rune == kEOF) {
        return absl::InvalidArgumentError(
            "unexpected end of statement while looking for matching single-quote");
      }
      if (t.rune == '\'') {
        if (raw_quotes_) result += t.bytes;
        return result;
      }
      result += t.bytes;
    }
  }

  absl::StatusOr<std::string> ProcessDoubleQuote() {
    std::string result;
    Token t = Next();
    if (raw_quotes_) result += t.bytes;
    for (;;) {
      const int32_t p = Peek();
      if (p == kEOF) {
        return absl::InvalidArgumentError(
            "unexpected end of statement while looking for matching double-quote");
      }
      if (p == '"') {
        t = Next();
        if (raw_quotes_) result += t.bytes;
        return result;
      }
      if (p == '$') {
        KILN_ASSIGN_OR_RETURN(std::string value, ProcessDollar());
        result += value;
        continue;
      }
      t = Next();
      if (t.rune == kEscape) {
        if (raw_escapes_) result += t.bytes;
        const int32_t n = Peek();
        if (n == kEOF) continue;
        if (n == '"' || n == '$' || n == kEscape) t = Next();
      }
      result += t.bytes;
    }
  }

  std::string ProcessName() {
    std::string name;
    while (Peek() != kEOF) {
      const int32_t ch = Peek();
      if (name.empty() && IsDigitRune(ch)) {
        while (Peek() != kEOF && IsDigitRune(Peek())) name += Next().bytes;
        return name;
      }
      if (name.empty() && IsSpecialParam(ch)) return std::string(Next().bytes);
      if (!IsLetterRune(ch) && !IsDigitRune(ch) && ch != '_') break;
      name += Next().bytes;
    }
    return name;
  }

  absl::StatusOr<std::string> ProcessDollar() {
    Next();  // '$'
    if (Peek() != '{') {
      std::string name = ProcessName();
      if (name.empty()) return std::string("$");
      return absl::StrCat("$", name);  // unset, kept as written
    }
    Next();  // '{'
    const int32_t p = Peek();
    if (p == kEOF) return absl::InvalidArgumentError("syntax error: missing '}'");
    if (p == '{' || p == '}' || p == ':') {
      return absl::InvalidArgumentError("syntax error: bad substitution");
    }
    std::string name = ProcessName();
    Token t = Next();
    std::string chs = RuneString(t);
    bool null_is_unset = false;
    int32_t ch = t.rune;
    if (ch == '}') return absl::StrCat("${", name, "}");
    if (ch == ':') {
      null_is_unset = true;
      t = Next();
      ch = t.rune;
      chs += RuneString(t);
    }
    if (null_is_unset || ch == '+' || ch == '-' || ch == '?' || ch == '#' || ch == '%') {
      const bool raw = ch == '#' || ch == '%';
      if (null_is_unset && raw) {
        return absl::InvalidArgumentError(
            absl::StrCat("unsupported modifier (", chs, ") in substitution"));
      }
      auto word = ProcessStopOn('}', raw);
      if (!word.ok()) {
        if (Peek() == kEOF) return absl::InvalidArgumentError("syntax error: missing '}'");
        return word.status();
      }
      return absl::StrCat("${", name, chs, word->first, "}");
    }
    if (ch == '/') {
      if (Peek() == '/') Next();
      auto pattern = ProcessStopOn('/', true);
      if (!pattern.ok()) {
        if (Peek() == kEOF) return absl::InvalidArgumentError("syntax error: missing '/' in ${}");
        return pattern.status();
      }
      auto replacement = ProcessStopOn('}', true);
      if (!replacement.ok()) {
        if (Peek() == kEOF) return absl::InvalidArgumentError("syntax error: missing '}'");
        return replacement.status();
      }
      return absl::StrCat("${", name, "/", pattern->first, "/", replacement->first, "}");
    }
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported modifier (", chs, ") in substitution"));
  }

  absl::StatusOr<std::string> ProcessPossibleHeredoc() {
    Next();  // '<'
    if (Peek() != '<') return std::string("<");
    Next();
    std::string result = "<<";
    while (Peek() == '\t' || Peek() == '\r' || Peek() == ' ') result += Next().bytes;
    return result;
  }

  std::string_view src_;
  size_t pos_ = 0;
  bool raw_quotes_;
  bool raw_escapes_;
  std::string words_buffer_;
};

bool IsReSpace(char c) { return c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' '; }

size_t CountQuotes(std::string_view s) {
  size_t n = 0;
  for (char c : s) {
    if (c == '\'' || c == '"') ++n;
  }
  return n;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> LexWords(std::string_view s, LexOptions options) {
  Lexer lexer(s, options);
  return lexer.ProcessWords();
}

absl::StatusOr<std::optional<Heredoc>> ParseHeredoc(std::string_view src) {
  // ^(\d*)<<(-?)\s*([^<]*)$
  size_t i = 0;
  while (i < src.size() && src[i] >= '0' && src[i] <= '9') ++i;
  if (src.substr(i, 2) != "<<") return std::nullopt;
  i += 2;
  bool chomp = false;
  if (i < src.size() && src[i] == '-') {
    chomp = true;
    ++i;
  }
  while (i < src.size() && IsReSpace(src[i])) ++i;
  std::string_view rest = src.substr(i);
  if (rest.find('<') != std::string_view::npos) return std::nullopt;
  if (rest.empty()) return std::nullopt;

  KILN_ASSIGN_OR_RETURN(std::vector<std::string> words, LexWords(rest, LexOptions{}));
  if (words.size() != 1) return std::nullopt;
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> raw_words,
                        LexWords(rest, LexOptions{.raw_quotes = true}));
  if (raw_words.size() != words.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("internal lexing of heredoc produced inconsistent results: ", AV(rest)));
  }
  Heredoc heredoc;
  heredoc.name = words[0];
  heredoc.expand = CountQuotes(words[0]) == CountQuotes(raw_words[0]);
  heredoc.chomp = chomp;
  return heredoc;
}

absl::StatusOr<std::vector<Heredoc>> HeredocsFromLine(std::string_view line) {
  std::vector<std::string> words;
  if (auto w = LexWords(line, LexOptions{.raw_quotes = true, .raw_escapes = true}); w.ok()) {
    words = std::move(*w);
  }
  std::vector<Heredoc> docs;
  for (const std::string& word : words) {
    KILN_ASSIGN_OR_RETURN(std::optional<Heredoc> heredoc, ParseHeredoc(word));
    if (heredoc.has_value()) docs.push_back(std::move(*heredoc));
  }
  return docs;
}

std::string ChompHeredocContent(std::string_view content) {
  std::string out;
  out.reserve(content.size());
  bool line_start = true;
  for (char c : content) {
    if (line_start && c == '\t') continue;
    line_start = c == '\n';
    out.push_back(c);
  }
  return out;
}

}  // namespace kiln::dockerfile::parser::internal
