#include "frontend/dockerfile/parser/parser.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/go_text.h"
#include "base/status.h"
#include "frontend/dockerfile/parser/internal/heredoc.h"
#include "frontend/dockerfile/parser/internal/json.h"
#include "frontend/dockerfile/parser/internal/parse.h"
#include "frontend/dockerfile/parser/internal/text.h"

namespace kiln::dockerfile::parser {
namespace internal {
namespace {

using ::kiln::AV;
using ::kiln::SV;
using ::kiln::gotext::DecodedRune;
using ::kiln::gotext::DecodeRune;
using ::kiln::gotext::TrimLeftSpace;
using ::kiln::gotext::TrimSpace;

// bufio.MaxScanTokenSize: BuildKit's line scanner rejects longer lines.
constexpr size_t kMaxLineSize = 64 * 1024;

constexpr std::string_view kEmptyContinuationDetail =
    "Empty continuation lines will become errors in a future release";
constexpr std::string_view kEmptyContinuationUrl =
    "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/";

const std::vector<std::string>& InstructionNames() {
  static const auto* names = new std::vector<std::string>{
      "ADD",    "ARG",   "CMD",         "COPY",  "ENTRYPOINT", "ENV",
      "EXPOSE", "FROM",  "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD",
      "RUN",    "SHELL", "STOPSIGNAL",  "USER",  "VOLUME",     "WORKDIR"};
  return *names;
}

// Splits the input into lines that keep their "\n" (BuildKit's scanLines), failing on lines
// longer than bufio.Scanner allows.
class LineScanner {
 public:
  explicit LineScanner(std::string_view data) : data_(data) {}

  bool Scan() {
    if (too_long_ || pos_ >= data_.size()) return false;
    size_t nl = data_.find('\n', pos_);
    size_t end = nl == std::string_view::npos ? data_.size() : nl + 1;
    size_t content = nl == std::string_view::npos ? end - pos_ : nl - pos_;
    if (content >= kMaxLineSize) {
      too_long_ = true;
      return false;
    }
    token_ = data_.substr(pos_, end - pos_);
    pos_ = end;
    return true;
  }
  std::string_view token() const { return token_; }
  bool too_long() const { return too_long_; }

 private:
  std::string_view data_;
  size_t pos_ = 0;
  std::string_view token_;
  bool too_long_ = false;
};

struct State {
  char escape = '\\';
  bool directives_done = false;
  std::set<std::string> seen_directives;
  Directives directives;
};

std::string_view TrimNewline(std::string_view s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

bool IsComment(std::string_view line) {
  line = TrimLeftSpace(line);
  return !line.empty() && line[0] == '#';
}

bool IsEmptyContinuationLine(std::string_view line) {
  return TrimLeftSpace(TrimNewline(line)).empty();
}

// RE2's \s.
bool IsReSpace(char c) { return c == '\t' || c == '\n' || c == '\f' || c == '\r' || c == ' '; }
bool IsAsciiAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsAsciiAlnum(char c) { return IsAsciiAlpha(c) || (c >= '0' && c <= '9'); }

// DirectiveParser.ParseLine on a line without its newline and leading whitespace. Returns
// whether the line was a directive.
absl::StatusOr<bool> PossibleParserDirective(State* st, std::string_view line) {
  if (st->directives_done) return false;
  if (line.empty() || line[0] != '#') {
    st->directives_done = true;
    return false;
  }
  std::string_view rest = TrimLeftSpace(line.substr(1));
  // ^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$
  size_t i = 0;
  if (rest.empty() || !IsAsciiAlpha(rest[0])) {
    st->directives_done = true;
    return false;
  }
  while (i < rest.size() && IsAsciiAlnum(rest[i])) ++i;
  std::string key = ToLower(rest.substr(0, i));
  while (i < rest.size() && IsReSpace(rest[i])) ++i;
  if (i >= rest.size() || rest[i] != '=') {
    st->directives_done = true;
    return false;
  }
  ++i;
  std::string_view remainder = rest.substr(i);
  if (remainder.empty()) {
    st->directives_done = true;
    return false;
  }
  size_t vb = 0;
  while (vb < remainder.size() && IsReSpace(remainder[vb])) ++vb;
  size_t ve = remainder.size();
  while (ve > vb && IsReSpace(remainder[ve - 1])) --ve;
  std::string value;
  if (vb == remainder.size()) {
    // Only blanks: the lazy group still takes one character (the last one).
    value = std::string(remainder.substr(remainder.size() - 1));
  } else {
    value = std::string(remainder.substr(vb, ve - vb));
  }
  if (key != "syntax" && key != "escape" && key != "check") {
    st->directives_done = true;
    return false;
  }
  if (!st->seen_directives.insert(key).second) {
    return absl::InvalidArgumentError(
        absl::StrCat("only one ", key, " parser directive can be used"));
  }
  if (key == "escape") {
    if (value != "`" && value != "\\") {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid escape token '", value, "' does not match ` or \\"));
    }
    st->escape = value[0];
    st->directives.escape = value[0];
  } else if (key == "syntax") {
    st->directives.syntax = value;
  } else {
    st->directives.check = value;
  }
  return true;
}

struct ProcessedLine {
  std::string_view line;
  bool directive = false;
};

absl::StatusOr<ProcessedLine> ProcessLine(State* st, std::string_view token, bool strip_left) {
  token = TrimNewline(token);
  if (strip_left) token = TrimLeftSpace(token);
  KILN_ASSIGN_OR_RETURN(bool directive, PossibleParserDirective(st, token));
  ProcessedLine out;
  out.line = IsComment(token) ? std::string_view() : token;
  out.directive = directive;
  return out;
}

// ([^E])E[ \t]*$|^E[ \t]*$ -> "$1". Returns the line and whether it ends the instruction.
std::pair<std::string_view, bool> TrimContinuation(std::string_view line, char escape) {
  std::string_view s = line;
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  if (s.empty() || s.back() != escape) return {line, true};
  if (s.size() == 1) return {std::string_view(), false};
  if (s[s.size() - 2] == escape) return {line, true};
  return {s.substr(0, s.size() - 1), false};
}

// extractBuilderFlags: the leading `--flag` words (quotes and escapes processed), and the rest.
std::pair<std::string, std::vector<std::string>> ExtractBuilderFlags(std::string_view line,
                                                                     char escape) {
  enum Phase { kInSpaces, kInWord, kInQuote };
  std::vector<std::string> words;
  Phase phase = kInSpaces;
  std::string word;
  char quote = 0;
  bool blank_ok = false;
  char ch = 0;
  for (size_t pos = 0; pos <= line.size(); ++pos) {
    if (pos != line.size()) ch = line[pos];
    if (phase == kInSpaces) {
      if (pos == line.size()) break;
      if (IsAsciiSpace(ch)) continue;
      if (ch != '-' || pos + 1 == line.size() || line[pos + 1] != '-') {
        return {std::string(line.substr(pos)), words};
      }
      phase = kInWord;
    }
    if ((phase == kInWord || phase == kInQuote) && pos == line.size()) {
      if (word != "--" && (blank_ok || !word.empty())) words.push_back(word);
      break;
    }
    if (phase == kInWord) {
      if (IsAsciiSpace(ch)) {
        phase = kInSpaces;
        if (word == "--") return {std::string(line.substr(pos)), words};
        if (blank_ok || !word.empty()) words.push_back(word);
        word.clear();
        blank_ok = false;
        continue;
      }
      if (ch == '\'' || ch == '"') {
        quote = ch;
        blank_ok = true;
        phase = kInQuote;
        continue;
      }
      if (ch == escape) {
        if (pos + 1 == line.size()) continue;
        ++pos;
        ch = line[pos];
      }
      word.push_back(ch);
      continue;
    }
    // kInQuote
    if (ch == quote) {
      phase = kInWord;
      continue;
    }
    if (ch == escape) {
      if (pos + 1 == line.size()) {
        phase = kInWord;
        continue;
      }
      ++pos;
      ch = line[pos];
    }
    word.push_back(ch);
  }
  return {std::string(), words};
}

struct SplitLine {
  std::string cmd;
  std::vector<std::string> flags;
  std::string args;
};

SplitLine SplitCommand(std::string_view line, char escape) {
  SplitLine out;
  std::vector<std::string> parts = SplitWhitespace(TrimSpace(line), 2);
  out.cmd = parts[0];
  if (parts.size() == 2) {
    auto [args, flags] = ExtractBuilderFlags(parts[1], escape);
    out.args = std::string(TrimSpace(args));
    out.flags = std::move(flags);
  }
  return out;
}

// parseWords: words split on whitespace, quotes and escapes kept as written, runes appended as
// strings.Builder.WriteRune does (an invalid byte becomes U+FFFD).
std::vector<std::string> ParseWords(std::string_view rest, char escape) {
  enum Phase { kInSpaces, kInWord, kInQuote };
  std::vector<std::string> words;
  Phase phase = kInSpaces;
  gotext::Rune quote = 0;
  bool blank_ok = false;
  std::string word;
  DecodedRune d;
  size_t pos = 0;
  while (pos <= rest.size()) {
    if (pos != rest.size()) d = DecodeRune(rest.substr(pos));
    const gotext::Rune ch = d.rune;
    if (phase == kInSpaces) {
      if (pos == rest.size()) break;
      if (d.valid() && gotext::IsSpace(ch)) {
        pos += d.width;
        continue;
      }
      phase = kInWord;
    }
    if ((phase == kInWord || phase == kInQuote) && pos == rest.size()) {
      if (blank_ok || !word.empty()) words.push_back(word);
      break;
    }
    if (phase == kInWord) {
      if (d.valid() && gotext::IsSpace(ch)) {
        phase = kInSpaces;
        if (blank_ok || !word.empty()) words.push_back(word);
        word.clear();
        blank_ok = false;
        pos += d.width;
        continue;
      }
      if (ch == '\'' || ch == '"') {
        quote = ch;
        blank_ok = true;
        phase = kInQuote;
      }
      if (ch == static_cast<unsigned char>(escape)) {
        if (pos + d.width == rest.size()) {
          pos += d.width;
          continue;
        }
        gotext::AppendRune(&word, d.rune);
        pos += d.width;
        d = DecodeRune(rest.substr(pos));
      }
      gotext::AppendRune(&word, d.rune);
      pos += d.width;
      continue;
    }
    // kInQuote
    if (d.rune == quote) phase = kInWord;
    if (d.rune == static_cast<unsigned char>(escape) && quote != '\'') {
      if (pos + d.width == rest.size()) {
        phase = kInWord;
        pos += d.width;
        continue;
      }
      gotext::AppendRune(&word, d.rune);
      pos += d.width;
      d = DecodeRune(rest.substr(pos));
    }
    gotext::AppendRune(&word, d.rune);
    pos += d.width;
  }
  return words;
}

// What a line parser produced for one instruction.
struct Args {
  std::vector<Node> next;
  std::vector<Node> children;
  bool json = false;
};

Node Leaf(std::string value) {
  Node n;
  n.value = std::move(value);
  return n;
}

enum class JsonResult { kOk, kNotJson };

// parseJSON: a JSON array of strings. kNotJson lets the caller fall back to another form; an
// array with non-strings is an error.
absl::StatusOr<JsonResult> ParseJSON(std::string_view rest, Args* out) {
  rest = TrimLeftSpace(rest);
  if (rest.empty() || rest[0] != '[') return JsonResult::kNotJson;
  std::optional<std::vector<JsonElement>> elements = DecodeJsonArray(rest);
  if (!elements.has_value()) return JsonResult::kNotJson;
  std::vector<Node> next;
  for (JsonElement& el : *elements) {
    if (!el.is_string) {
      return absl::InvalidArgumentError(
          "when using JSON array syntax, arrays must be comprised of strings only");
    }
    next.push_back(Leaf(std::move(el.value)));
  }
  out->next = std::move(next);
  out->json = true;
  return JsonResult::kOk;
}

absl::Status ParseMaybeJSON(std::string_view rest, Args* out) {
  if (rest.empty()) return absl::OkStatus();
  KILN_ASSIGN_OR_RETURN(JsonResult r, ParseJSON(rest, out));
  if (r == JsonResult::kOk) return absl::OkStatus();
  out->next.push_back(Leaf(std::string(rest)));
  return absl::OkStatus();
}

void ParseStringsWhitespaceDelimited(std::string_view rest, Args* out) {
  if (rest.empty()) return;
  for (std::string& s : SplitWhitespace(rest, -1)) out->next.push_back(Leaf(std::move(s)));
}

absl::Status ParseMaybeJSONToList(std::string_view rest, Args* out) {
  KILN_ASSIGN_OR_RETURN(JsonResult r, ParseJSON(rest, out));
  if (r == JsonResult::kOk) return absl::OkStatus();
  ParseStringsWhitespaceDelimited(rest, out);
  return absl::OkStatus();
}

void ParseString(std::string_view rest, Args* out) {
  if (rest.empty()) return;
  out->next.push_back(Leaf(std::string(rest)));
}

void AppendKeyValue(Args* out, std::string key, std::string value, std::string sep) {
  out->next.push_back(Leaf(std::move(key)));
  out->next.push_back(Leaf(std::move(value)));
  out->next.push_back(Leaf(std::move(sep)));
}

// parseNameVal (ENV, LABEL): `KEY name value` or `KEY a=b c=d`.
absl::Status ParseNameVal(std::string_view rest, std::string_view key, char escape, Args* out) {
  std::vector<std::string> words = ParseWords(rest, escape);
  if (words.empty()) return absl::OkStatus();
  if (words[0].find('=') == std::string::npos) {
    std::vector<std::string> parts = SplitWhitespace(rest, 2);
    if (parts.size() < 2) {
      return absl::InvalidArgumentError(absl::StrCat(AV(key), " must have two arguments"));
    }
    AppendKeyValue(out, parts[0], parts[1], "");
    return absl::OkStatus();
  }
  for (const std::string& word : words) {
    size_t eq = word.find('=');
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("Syntax error - can't find = in ",
                                                     gotext::Quote(word),
                                                     ". Must be of the form: name=value"));
    }
    AppendKeyValue(out, word.substr(0, eq), word.substr(eq + 1), "=");
  }
  return absl::OkStatus();
}

void ParseNameOrNameVal(std::string_view rest, char escape, Args* out) {
  for (std::string& w : ParseWords(rest, escape)) out->next.push_back(Leaf(std::move(w)));
}

absl::Status ParseHealthConfig(std::string_view rest, Args* out) {
  size_t sep = 0;
  while (sep < rest.size() && !IsAsciiSpace(rest[sep])) ++sep;
  size_t next = sep;
  while (next < rest.size() && IsAsciiSpace(rest[next])) ++next;
  if (sep == 0) return absl::OkStatus();
  Args cmd;
  KILN_RETURN_IF_ERROR(ParseMaybeJSON(rest.substr(next), &cmd));
  out->next.push_back(Leaf(std::string(rest.substr(0, sep))));
  for (Node& n : cmd.next) out->next.push_back(std::move(n));
  out->json = cmd.json;
  return absl::OkStatus();
}

absl::StatusOr<Node> NewNodeFromLine(std::string_view line, State* st,
                                     std::vector<std::string> comments);

absl::Status ParseSubCommand(std::string_view rest, State* st, Args* out) {
  if (rest.empty()) return absl::OkStatus();
  KILN_ASSIGN_OR_RETURN(Node child, NewNodeFromLine(rest, st, {}));
  out->children.push_back(std::move(child));
  return absl::OkStatus();
}

absl::StatusOr<Node> NewNodeFromLine(std::string_view line, State* st,
                                     std::vector<std::string> comments) {
  SplitLine split = SplitCommand(line, st->escape);
  const std::string cmd = ToLower(split.cmd);
  const std::string_view rest = split.args;
  Args args;
  if (cmd == "add" || cmd == "copy" || cmd == "volume") {
    KILN_RETURN_IF_ERROR(ParseMaybeJSONToList(rest, &args));
  } else if (cmd == "arg") {
    ParseNameOrNameVal(rest, st->escape, &args);
  } else if (cmd == "cmd" || cmd == "entrypoint" || cmd == "run" || cmd == "shell") {
    KILN_RETURN_IF_ERROR(ParseMaybeJSON(rest, &args));
  } else if (cmd == "env") {
    KILN_RETURN_IF_ERROR(ParseNameVal(rest, "ENV", st->escape, &args));
  } else if (cmd == "label") {
    KILN_RETURN_IF_ERROR(ParseNameVal(rest, "LABEL", st->escape, &args));
  } else if (cmd == "expose" || cmd == "from") {
    ParseStringsWhitespaceDelimited(rest, &args);
  } else if (cmd == "healthcheck") {
    KILN_RETURN_IF_ERROR(ParseHealthConfig(rest, &args));
  } else if (cmd == "maintainer" || cmd == "stopsignal" || cmd == "user" || cmd == "workdir") {
    ParseString(rest, &args);
  } else if (cmd == "onbuild") {
    KILN_RETURN_IF_ERROR(ParseSubCommand(rest, st, &args));
  } else {
    // Unknown instruction: kept with one empty argument, like BuildKit's parseIgnore.
    args.next.push_back(Node());
  }
  Node node;
  node.value = cmd;
  node.original = std::string(line);
  node.flags = std::move(split.flags);
  node.next = std::move(args.next);
  node.children = std::move(args.children);
  node.json = args.json;
  node.prev_comment = std::move(comments);
  return node;
}

bool CanContainHeredoc(const Node& node) {
  const Node* n = &node;
  if (n->value == "onbuild" && !n->children.empty()) n = &n->children[0];
  if (n->value != "add" && n->value != "copy" && n->value != "run") return false;
  return !n->json;
}

// Levenshtein distance over runes.
size_t Levenshtein(std::string_view a, std::string_view b) {
  auto runes = [](std::string_view s) {
    std::vector<char32_t> out;
    size_t pos = 0;
    while (pos < s.size()) {
      DecodedRune d = DecodeRune(s.substr(pos));
      out.push_back(d.rune);
      pos += d.width;
    }
    return out;
  };
  std::vector<char32_t> ra = runes(a);
  std::vector<char32_t> rb = runes(b);
  std::vector<size_t> prev(rb.size() + 1);
  std::vector<size_t> cur(rb.size() + 1);
  for (size_t j = 0; j <= rb.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= ra.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= rb.size(); ++j) {
      size_t sub = prev[j - 1] + (ra[i - 1] == rb[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[rb.size()];
}

}  // namespace

absl::Status LineError(int line, std::string_view message) {
  if (line <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("dockerfile parse error: ", AV(message)));
  }
  absl::Status st = absl::InvalidArgumentError(
      absl::StrCat("dockerfile parse error on line ", line, ": ", AV(message)));
  st.SetPayload(kLinesPayload, absl::Cord(absl::StrCat(line, "-", line)));
  return st;
}

std::string SuggestOption(std::string_view value, const std::vector<std::string>& options,
                          bool case_sensitive) {
  const std::string v = case_sensitive ? std::string(value) : ToLower(value);
  for (const std::string& opt : options) {
    if (v == (case_sensitive ? opt : ToLower(opt))) return "";
  }
  std::string match;
  size_t min_dist = 3;
  for (const std::string& opt : options) {
    const std::string o = case_sensitive ? opt : ToLower(opt);
    size_t dist = Levenshtein(v, o);
    if (dist < min_dist) {
      min_dist = dist;
      if (case_sensitive) {
        match = o;
      } else if (std::string(value) == ToLower(value)) {
        match = ToLower(o);
      } else if (std::string(value) == ToUpper(value)) {
        match = ToUpper(o);
      } else {
        match = o;
      }
    }
  }
  return match;
}

bool IsKnownInstruction(std::string_view keyword) {
  const std::string upper = ToUpper(keyword);
  const auto& names = InstructionNames();
  return std::find(names.begin(), names.end(), upper) != names.end();
}

std::string UnknownInstructionMessage(std::string_view keyword) {
  std::string msg = absl::StrCat("unknown instruction: ", AV(keyword));
  std::string suggestion = SuggestOption(keyword, InstructionNames(), false);
  if (!suggestion.empty()) absl::StrAppend(&msg, " (did you mean ", suggestion, "?)");
  return msg;
}

absl::StatusOr<Result> ParseWithOptions(std::string_view dockerfile, const ParseOptions& options) {
  State st;
  Result result;
  LineScanner scanner(dockerfile);
  int current_line = 0;
  std::vector<std::string> comments;

  while (scanner.Scan()) {
    std::string_view bytes_read = scanner.token();
    if (current_line == 0 && bytes_read.substr(0, 3) == "\xEF\xBB\xBF") {
      bytes_read.remove_prefix(3);
    }
    if (IsComment(bytes_read)) {
      std::string comment(TrimSpace(bytes_read.substr(1)));
      if (comment.empty()) {
        comments.clear();
      } else {
        comments.push_back(std::move(comment));
      }
    }
    auto processed = ProcessLine(&st, bytes_read, true);
    if (!processed.ok()) return LineError(current_line + 1, SV(processed.status().message()));
    if (processed->directive && !comments.empty()) comments.pop_back();
    ++current_line;

    const int start_line = current_line;
    auto [first, end_of_line] = TrimContinuation(processed->line, st.escape);
    if (end_of_line && first.empty()) continue;
    std::string line(first);

    bool has_empty_continuation = false;
    while (!end_of_line && scanner.Scan()) {
      std::string_view raw = scanner.token();
      auto cont = ProcessLine(&st, raw, false);
      if (!cont.ok()) return LineError(current_line + 1, SV(cont.status().message()));
      ++current_line;
      if (IsComment(raw)) continue;
      if (IsEmptyContinuationLine(cont->line)) {
        has_empty_continuation = true;
        continue;
      }
      auto [part, eol] = TrimContinuation(cont->line, st.escape);
      end_of_line = eol;
      line.append(part);
    }

    if (has_empty_continuation) {
      Warning w;
      w.short_message = "Empty continuation line";
      w.detail = std::string(kEmptyContinuationDetail);
      w.line = current_line;
      w.rule = "NoEmptyContinuation";
      w.url = std::string(kEmptyContinuationUrl);
      result.warnings.push_back(std::move(w));
    }

    auto child = NewNodeFromLine(line, &st, comments);
    if (!child.ok()) return LineError(start_line, SV(child.status().message()));

    if (CanContainHeredoc(*child) && line.find("<<") != std::string::npos) {
      auto heredocs = HeredocsFromLine(line);
      if (!heredocs.ok()) return LineError(start_line, SV(heredocs.status().message()));
      for (Heredoc& heredoc : *heredocs) {
        bool terminated = false;
        std::string content;
        while (scanner.Scan()) {
          std::string_view raw = scanner.token();
          ++current_line;
          std::string_view possible_terminator = TrimNewline(raw);
          if (heredoc.chomp) {
            while (!possible_terminator.empty() && possible_terminator[0] == '\t') {
              possible_terminator.remove_prefix(1);
            }
          }
          if (possible_terminator == heredoc.name) {
            terminated = true;
            break;
          }
          content.append(raw);
        }
        if (!terminated) return LineError(start_line, "unterminated heredoc");
        heredoc.content = heredoc.chomp ? ChompHeredocContent(content) : std::move(content);
        child->heredocs.push_back(std::move(heredoc));
      }
    }

    child->start_line = start_line;
    child->end_line = current_line;
    for (Node& sub : child->children) {
      sub.start_line = start_line;
      sub.end_line = current_line;
    }
    result.root.children.push_back(std::move(*child));
    comments.clear();
  }

  if (result.root.children.empty()) {
    return LineError(current_line, "file with no instructions");
  }
  if (scanner.too_long()) {
    return LineError(
        current_line + 1,
        absl::StrCat("dockerfile line greater than max allowed size of ", kMaxLineSize - 1));
  }
  if (!options.allow_unknown_instructions) {
    for (const Node& n : result.root.children) {
      if (!IsKnownInstruction(n.value)) {
        std::vector<std::string> parts = SplitWhitespace(TrimSpace(n.original), 2);
        return LineError(n.start_line, UnknownInstructionMessage(parts[0]));
      }
    }
  }
  result.root.start_line = result.root.children.front().start_line;
  result.root.end_line = result.root.children.back().end_line;
  result.directives = st.directives;
  return result;
}

}  // namespace internal

absl::StatusOr<Result> Parse(std::string_view dockerfile) {
  return internal::ParseWithOptions(dockerfile, internal::ParseOptions{});
}

namespace {

std::string DumpNode(const Node& node) {
  std::string s = internal::ToLower(node.value);
  if (!node.flags.empty()) absl::StrAppend(&s, " ", internal::GoQuoteSlice(node.flags));
  for (const Node& child : node.children) {
    if (node.value.empty()) {
      absl::StrAppend(&s, "(", DumpNode(child), ")\n");
    } else {
      // ONBUILD: BuildKit keeps the trigger as a child of the instruction's first argument.
      absl::StrAppend(&s, " (", DumpNode(child), ")");
    }
  }
  for (const Node& n : node.next) absl::StrAppend(&s, " ", gotext::Quote(n.value));
  return std::string(gotext::TrimSpace(s));
}

}  // namespace

std::string Dump(const Node& root) { return DumpNode(root); }

}  // namespace kiln::dockerfile::parser
