#include "frontend/dockerfile/shell/lex.h"

#include <map>
#include <memory>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/go_text.h"
#include "base/status.h"
#include "frontend/dockerfile/shell/internal/pattern.h"
#include "frontend/dockerfile/shell/internal/runes.h"

namespace kiln::dockerfile::shell {
namespace {

using gotext::AppendRune;
using gotext::IsSpace;
using gotext::RuneToString;
using internal::kEof;
using internal::Rune;

absl::Status Invalid(std::string_view message) { return absl::InvalidArgumentError(AV(message)); }

absl::Status UnsupportedModifier(std::string_view op) {
  return Invalid(absl::StrCat("unsupported modifier (", AV(op), ") in substitution"));
}

bool IsSpecialParam(Rune r) {
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

// Nesting limit for ${VAR<op>...${...}} operands, so hostile input cannot exhaust the stack
// (BuildKit has no limit; Go stacks grow).
constexpr int kMaxNesting = 1000;

bool IsHeredocBlank(Rune r) { return r == '\t' || r == '\r' || r == ' '; }

// Gathers the fields of ProcessWords. Like BuildKit, the buffer of the word being built is shared
// by every nesting level of the scan (see Scanner::ScanUntil), so a nested scan clears it.
class Fields {
 public:
  explicit Fields(std::string* buf) : buf_(buf) {}

  // An unquoted character: whitespace ends the current field.
  void AddChar(Rune ch) {
    if (IsSpace(ch)) {
      if (in_word_ && !buf_->empty()) Flush();
      return;
    }
    AddRawChar(ch);
  }
  // A quoted or escaped character: always part of the field.
  void AddRawChar(Rune ch) {
    AppendRune(buf_, ch);
    in_word_ = true;
  }
  // An expanded value: split like unquoted text (read rune by rune, invalid bytes as U+FFFD).
  void AddString(std::string_view s) {
    size_t pos = 0;
    while (pos < s.size()) {
      const gotext::DecodedRune d = gotext::DecodeRune(s.substr(pos));
      AddChar(d.rune);
      pos += d.width;
    }
  }
  // Quoted text: one piece of the field, even when empty or blank.
  void AddRawString(std::string_view s) {
    buf_->append(s);
    in_word_ = true;
  }
  std::vector<std::string> Take() {
    if (!buf_->empty()) Flush();
    return std::move(words_);
  }

 private:
  void Flush() {
    words_.push_back(*buf_);
    buf_->clear();
    in_word_ = false;
  }

  std::string* buf_;
  std::vector<std::string> words_;
  bool in_word_ = false;
};

struct Scanned {
  std::string result;
  std::vector<std::string> words;
};

// One expansion of one word: the state of BuildKit's shellWord.
class Scanner {
 public:
  Scanner(char escape, bool raw_quotes, bool raw_escapes, bool skip_process_quotes,
          bool skip_unset_env, const Lookup& env, std::string_view source, ProcessResult* out)
      : escape_(static_cast<unsigned char>(escape)),
        raw_quotes_(raw_quotes),
        raw_escapes_(raw_escapes),
        skip_process_quotes_(skip_process_quotes),
        skip_unset_env_(skip_unset_env),
        env_(env),
        in_(source),
        out_(out) {}

  absl::StatusOr<Scanned> Run() { return ScanUntil(kEof, raw_escapes_); }

 private:
  // Scans up to (and consuming) `stop`, or to the end when stop is kEof; reaching the end first
  // is an error unless stop is kEof. `raw_escapes` applies to this level only.
  absl::StatusOr<Scanned> ScanUntil(Rune stop, bool raw_escapes);
  absl::StatusOr<std::string> SingleQuoted();
  absl::StatusOr<std::string> DoubleQuoted();
  absl::StatusOr<std::string> Dollar();
  absl::StatusOr<std::string> Braced();
  std::string Name();
  std::string PossibleHeredoc();
  std::optional<std::string> Get(const std::string& name);

  const Rune escape_;
  const bool raw_quotes_;
  bool raw_escapes_;
  const bool skip_process_quotes_;
  const bool skip_unset_env_;
  const Lookup& env_;
  internal::RuneScanner in_;
  ProcessResult* out_;
  std::string field_buf_;
  int depth_ = 0;
};

absl::StatusOr<Scanned> Scanner::ScanUntil(Rune stop, bool raw_escapes) {
  if (depth_ > kMaxNesting) return Invalid("syntax error: expansions nested too deeply");
  ++depth_;
  std::string result;
  // The field buffer is shared with the enclosing levels (BuildKit's shellWord.wordsBuffer):
  // starting a nested scan drops the partial field of the level that started it.
  field_buf_.clear();
  Fields fields(&field_buf_);
  const bool saved_raw_escapes = raw_escapes_;
  raw_escapes_ = raw_escapes;
  struct Restore {
    Scanner* self;
    bool raw_escapes;
    ~Restore() {
      self->raw_escapes_ = raw_escapes;
      --self->depth_;
    }
  } restore{this, saved_raw_escapes};

  while (in_.Peek() != kEof) {
    Rune ch = in_.Peek();
    if (stop != kEof && ch == stop) {
      in_.Next();
      return Scanned{std::move(result), fields.Take()};
    }
    absl::StatusOr<std::string> piece;
    bool special = true;
    if (ch == '$') {
      piece = Dollar();
    } else if (ch == '<') {
      piece = PossibleHeredoc();
    } else if (ch == '\'' && !skip_process_quotes_) {
      piece = SingleQuoted();
    } else if (ch == '"' && !skip_process_quotes_) {
      piece = DoubleQuoted();
    } else {
      special = false;
    }
    if (special) {
      if (!piece.ok()) return piece.status();
      result += *piece;
      if (ch == '$') {
        fields.AddString(*piece);
      } else {
        fields.AddRawString(*piece);
      }
      continue;
    }

    ch = in_.Next();
    if (ch == escape_) {
      if (raw_escapes_) {
        fields.AddRawChar(ch);
        AppendRune(&result, ch);
      }
      // The escape character makes the next character literal; at the end it is dropped.
      ch = in_.Next();
      if (ch == kEof) break;
      fields.AddRawChar(ch);
    } else {
      fields.AddChar(ch);
    }
    AppendRune(&result, ch);
  }
  if (stop != kEof) {
    return Invalid(absl::StrCat("unexpected end of statement while looking for matching ",
                                RuneToString(stop)));
  }
  return Scanned{std::move(result), fields.Take()};
}

absl::StatusOr<std::string> Scanner::SingleQuoted() {
  // Everything up to the next single quote is literal; a single quote cannot be escaped.
  std::string result;
  Rune ch = in_.Next();
  if (raw_quotes_) AppendRune(&result, ch);
  while (true) {
    ch = in_.Next();
    if (ch == kEof) {
      return Invalid("unexpected end of statement while looking for matching single-quote");
    }
    if (ch == '\'') {
      if (raw_quotes_) AppendRune(&result, ch);
      return result;
    }
    AppendRune(&result, ch);
  }
}

absl::StatusOr<std::string> Scanner::DoubleQuoted() {
  // Literal except for `$` expansions; the escape character escapes only `"`, `$` and itself
  // (otherwise it stays, followed by the next character).
  std::string result;
  Rune ch = in_.Next();
  if (raw_quotes_) AppendRune(&result, ch);
  while (true) {
    const Rune peek = in_.Peek();
    if (peek == kEof) {
      return Invalid("unexpected end of statement while looking for matching double-quote");
    }
    if (peek == '"') {
      ch = in_.Next();
      if (raw_quotes_) AppendRune(&result, ch);
      return result;
    }
    if (peek == '$') {
      absl::StatusOr<std::string> value = Dollar();
      if (!value.ok()) return value.status();
      result += *value;
      continue;
    }
    ch = in_.Next();
    if (ch == escape_) {
      if (raw_escapes_) AppendRune(&result, ch);
      const Rune next = in_.Peek();
      if (next == kEof) continue;  // the error for the missing quote follows
      if (next == '"' || next == '$' || next == escape_) ch = in_.Next();
    }
    AppendRune(&result, ch);
  }
}

std::optional<std::string> Scanner::Get(const std::string& name) {
  std::optional<std::string> value = env_(name);
  if (value.has_value()) {
    out_->matched.insert(name);
  } else {
    out_->unmatched.insert(name);
  }
  return value;
}

absl::StatusOr<std::string> Scanner::Dollar() {
  in_.Next();  // '$'
  if (in_.Peek() != '{') {
    const std::string name = Name();
    if (name.empty()) return std::string("$");
    std::optional<std::string> value = Get(name);
    if (!value.has_value()) {
      if (skip_unset_env_) return absl::StrCat("$", name);
      return std::string();
    }
    return *std::move(value);
  }
  return Braced();
}

absl::StatusOr<std::string> Scanner::Braced() {
  in_.Next();  // '{'
  switch (in_.Peek()) {
    case kEof:
      return Invalid("syntax error: missing '}'");
    case '{':
    case '}':
    case ':':
      return Invalid("syntax error: bad substitution");
    default:
      break;
  }
  const std::string name = Name();
  Rune op = in_.Next();
  std::string op_text = RuneToString(op);

  if (op == '}') {
    std::optional<std::string> value = Get(name);
    if (!value.has_value()) {
      if (skip_unset_env_) return absl::StrCat("${", name, "}");
      return std::string();
    }
    return *std::move(value);
  }

  if (op == '/') {
    const bool replace_all = in_.Peek() == '/';
    if (replace_all) in_.Next();
    absl::StatusOr<Scanned> pattern = ScanUntil('/', /*raw_escapes=*/true);
    if (!pattern.ok()) {
      if (in_.Peek() == kEof) return Invalid("syntax error: missing '/' in ${}");
      return pattern.status();
    }
    absl::StatusOr<Scanned> replacement = ScanUntil('}', /*raw_escapes=*/true);
    if (!replacement.ok()) {
      if (in_.Peek() == kEof) return Invalid("syntax error: missing '}'");
      return replacement.status();
    }
    std::optional<std::string> value = Get(name);
    if (!value.has_value() && skip_unset_env_) {
      return absl::StrCat("${", name, "/", pattern->result, "/", replacement->result, "}");
    }
    return internal::Substitute(value.value_or(""), pattern->result, replacement->result,
                                replace_all);
  }

  bool null_is_unset = false;
  switch (op) {
    case ':':
      // ${VAR:op...}: the empty value counts as unset. Whatever follows is taken as the
      // operator; only -, +, ? are valid after ':' (checked once the operand is read).
      null_is_unset = true;
      op = in_.Next();
      op_text += RuneToString(op);
      break;
    case '+':
    case '-':
    case '?':
    case '#':
    case '%':
      break;
    default:
      return UnsupportedModifier(op_text);
  }

  const bool is_pattern = op == '#' || op == '%';
  if (null_is_unset && is_pattern) return UnsupportedModifier(op_text);
  absl::StatusOr<Scanned> operand = ScanUntil('}', /*raw_escapes=*/is_pattern);
  if (!operand.ok()) {
    if (in_.Peek() == kEof) return Invalid("syntax error: missing '}'");
    return operand.status();
  }
  std::string word = std::move(operand->result);

  std::optional<std::string> value = Get(name);
  if (!value.has_value() && skip_unset_env_) {
    return absl::StrCat("${", name, op_text, word, "}");
  }
  const bool set = value.has_value();
  const bool null = !set || (null_is_unset && value->empty());
  switch (op) {
    case '-':
      if (null) return word;
      return *std::move(value);
    case '+':
      if (null) return std::string();
      return word;
    case '?':
      if (!set) {
        return Invalid(
            absl::StrCat(name, ": ", word.empty() ? "is not allowed to be unset" : word));
      }
      if (null) {
        return Invalid(
            absl::StrCat(name, ": ", word.empty() ? "is not allowed to be empty" : word));
      }
      return *std::move(value);
    case '#':
    case '%': {
      // A doubled operator (## / %%) takes the longest match, a single one the shortest.
      bool greedy = false;
      std::string_view pattern = word;
      if (!pattern.empty() && static_cast<unsigned char>(pattern[0]) == op) {
        greedy = true;
        pattern.remove_prefix(1);
      }
      if (op == '%') return internal::TrimSuffix(pattern, value.value_or(""), greedy);
      return internal::TrimPrefix(pattern, value.value_or(""), greedy);
    }
    default:
      return UnsupportedModifier(op_text);
  }
}

std::string Scanner::Name() {
  // Letters, digits and '_'; a leading digit starts a run of digits only (positional
  // parameter), and a leading special parameter character is a name on its own.
  std::string name;
  while (in_.Peek() != kEof) {
    const Rune ch = in_.Peek();
    if (name.empty() && gotext::IsDigit(ch)) {
      while (in_.Peek() != kEof && gotext::IsDigit(in_.Peek())) AppendRune(&name, in_.Next());
      return name;
    }
    if (name.empty() && IsSpecialParam(ch)) {
      in_.Next();
      return RuneToString(ch);
    }
    if (!gotext::IsLetter(ch) && !gotext::IsDigit(ch) && ch != '_') break;
    AppendRune(&name, in_.Next());
  }
  return name;
}

std::string Scanner::PossibleHeredoc() {
  in_.Next();  // '<'
  if (in_.Peek() != '<') return "<";
  in_.Next();
  // "<<" and the blanks after it stay together (a heredoc marker may be written "<< EOF").
  std::string result = "<<";
  while (IsHeredocBlank(in_.Peek())) AppendRune(&result, in_.Next());
  return result;
}

}  // namespace

absl::StatusOr<ProcessResult> Lex::ProcessWord(std::string_view word, const Lookup& env) const {
  ProcessResult out;
  Scanner scanner(escape_, raw_quotes_, raw_escapes_, skip_process_quotes_, skip_unset_env_, env,
                  word, &out);
  absl::StatusOr<Scanned> scanned = scanner.Run();
  if (!scanned.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("failed to process ", gotext::Quote(word), ": ", scanned.status().message()));
  }
  out.result = std::move(scanned->result);
  out.words = std::move(scanned->words);
  return out;
}

absl::StatusOr<ProcessResult> Lex::ProcessWords(std::string_view words, const Lookup& env) const {
  return ProcessWord(words, env);
}

Lookup EnvLookup(const std::vector<std::string>& key_equals_value) {
  auto env = std::make_shared<std::map<std::string, std::string, std::less<>>>();
  for (const std::string& entry : key_equals_value) {
    const size_t eq = entry.find('=');
    if (eq == std::string::npos) {
      (*env)[entry] = "";
    } else {
      (*env)[entry.substr(0, eq)] = entry.substr(eq + 1);
    }
  }
  return [env](std::string_view name) -> std::optional<std::string> {
    auto it = env->find(name);
    if (it == env->end()) return std::nullopt;
    return it->second;
  };
}

}  // namespace kiln::dockerfile::shell
