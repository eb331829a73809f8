#pragma once
// Shell-word expansion for Dockerfiles, exactly as the Dockerfile reference and BuildKit's
// frontend/dockerfile/shell (Lex.ProcessWord/ProcessWords, v0.24) define it: $VAR, ${VAR},
// ${VAR:-x}, ${VAR-x}, ${VAR:+x}, ${VAR+x}, ${VAR:?msg}, ${VAR?msg}, ${VAR#p}, ${VAR##p},
// ${VAR%p}, ${VAR%%p}, ${VAR/p/r}, ${VAR//p/r}, single and double quotes, and the escape
// character (`\` or `` ` ``). Pure; thread-compatible (a const Lex may be shared).
//
// Details that follow BuildKit to the letter (including its quirks):
//  - Patterns (p) are globs with `*` (any run of characters), `?` (one character) and `\x`
//    (x literal; only `\*`, `\?`, `\\`, `\}` and `\/` are valid escapes, whatever the escape
//    character: in `` ` `` mode, `` `* `` is a literal backtick then a wildcard). `[...]` is NOT
//    a bracket expression: brackets match literally. Wildcards never match a newline. `#`/`%`
//    take the shortest match, `##`/`%%` the longest; `/` and `//` are greedy and replace the
//    leftmost (resp. every non-overlapping) match. Escape characters stay in the pattern and
//    replacement text (`${v//\//\/}` turns "/" into "\/"). In the replacement of `//`, `$0` /
//    `${0}` is the matched text, `$$` a `$`, other `$name`/`$N` references are empty (Go's
//    Regexp.Expand); `/` inserts its replacement as is. Operands are expanded before the
//    variable is tested (${A:+$B} looks B up even when A is unset).
//  - Names: `$` + letters/digits/`_` (Unicode letters and digits); a leading digit reads only
//    digits ($1x is $1 then "x"); `@ * # ? - $ ! 0` are one-character special names. None is
//    special otherwise: they are looked up like any variable (normally unset, so empty). `$`
//    followed by anything else is kept literally.
//  - Inside double quotes the escape character only escapes `"`, `$` and itself; before any
//    other character it is kept.
//  - Word splitting (`words`) happens on unquoted whitespace (Unicode), whitespace inside
//    expanded values included; quoted/escaped whitespace is kept; an empty word (`""`) is
//    dropped; `<<` plus the blanks after it stays one token (heredoc marker). BuildKit quirk
//    kept: any ${VAR<op>word} expansion discards the characters of the current field gathered
//    before it ("a${x:-b}c" splits into ["bc"]); the joined `result` is not affected.
//  - Input is read as UTF-8; invalid bytes of the word itself read as U+FFFD (values from the
//    environment are copied byte for byte, except through `%`/`%%`, which rebuild the value
//    from runes), and a leading U+FEFF is skipped.

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kiln::dockerfile::shell {

// Looks a variable up: nullopt when unset (empty string when set but empty).
using Lookup = std::function<std::optional<std::string>(std::string_view name)>;

struct ProcessResult {
  std::string result;               // the word expanded, no field splitting (ProcessWord)
  std::vector<std::string> words;   // the same, split into fields (ProcessWords)
  std::set<std::string> matched;    // variables looked up and set
  std::set<std::string> unmatched;  // variables looked up and unset
};

class Lex {
 public:
  // `escape` is the Dockerfile escape character: '\\' (default) or '`'.
  explicit Lex(char escape = '\\') : escape_(escape) {}

  char escape() const { return escape_; }

  // BuildKit's RawQuotes: quote characters are kept in the output (quoting still groups
  // characters and still stops expansion inside single quotes). Default false.
  void set_raw_quotes(bool v) { raw_quotes_ = v; }
  // BuildKit's RawEscapes: escape characters are kept in the output (they still escape) at the
  // top level of the word and in its double quotes (where a non-escaping one then shows twice:
  // "a\b" gives a\\b); inside ${VAR-word}-style operands escapes are not kept. Default false.
  void set_raw_escapes(bool v) { raw_escapes_ = v; }
  // BuildKit's SkipProcessQuotes: `'` and `"` are ordinary characters (no grouping, no literal
  // single-quoted text, kept in the output). Default false.
  void set_skip_process_quotes(bool v) { skip_process_quotes_ = v; }
  // BuildKit's SkipUnsetEnv: a reference to an unset variable is left in the output in its
  // source form ("$X", "${X}", "${X:-word}" with word expanded, "${X/p/r}" -- `//` is printed
  // as `/`), with no error for `?` nor for an unsupported operator. Default false.
  void set_skip_unset_env(bool v) { skip_unset_env_ = v; }

  // One word: quotes removed, variables expanded, no field splitting. `words`, `matched` and
  // `unmatched` are filled too.
  // Errors: INVALID_ARGUMENT "failed to process \"<word, Go-quoted>\": <reason>", reason one of
  // "syntax error: missing '}'", "syntax error: missing '/' in ${}",
  // "syntax error: bad substitution", "unsupported modifier (<op>) in substitution",
  // "<VAR>: is not allowed to be unset", "<VAR>: is not allowed to be empty", "<VAR>: <msg>",
  // "unexpected end of statement while looking for matching single-quote" (double-quote, or the
  // character), "invalid pattern (<p>) in substitution: invalid escape '\<c>'".
  [[nodiscard]] absl::StatusOr<ProcessResult> ProcessWord(std::string_view word,
                                                          const Lookup& env) const;
  // Several words: the same processing; `words` is the field-split result (for EXPOSE, heredoc
  // markers, ...). Identical to ProcessWord: both fill every field (BuildKit's ProcessWords
  // does not record matched/unmatched; here they are always filled).
  [[nodiscard]] absl::StatusOr<ProcessResult> ProcessWords(std::string_view words,
                                                           const Lookup& env) const;

 private:
  char escape_;
  bool raw_quotes_ = false;
  bool raw_escapes_ = false;
  bool skip_process_quotes_ = false;
  bool skip_unset_env_ = false;
};

// Convenience: a Lookup over KEY=VALUE entries (the last one wins; an entry without '=' sets KEY
// to ""), as a stage's env list. Keys are compared exactly (as on Unix).
Lookup EnvLookup(const std::vector<std::string>& key_equals_value);

}  // namespace kiln::dockerfile::shell
