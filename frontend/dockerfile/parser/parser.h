#pragma once
// Dockerfile parser: text -> a tree of instruction nodes, as BuildKit's
// frontend/dockerfile/parser does. Directives (`# syntax=`, `# escape=`, `# check=`) at the top,
// line continuations with the escape character (`\` or `` ` ``), comments and empty lines inside
// continuations, JSON (exec) vs shell form, flags (`--from=x`) and heredocs (`<<EOF`, `<<-EOF`,
// quoted delimiters, several per instruction). No word expansion happens here (see shell/lex.h).
// Pure functions on values; thread-compatible.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace kiln::dockerfile::parser {

// The payload a parse or conversion error carries to name its Dockerfile lines: "START-END"
// (1-based). DockerfileToLlb turns it into an error source (llb/errdefs.h) with the text.
inline constexpr char kLinesPayload[] = "kiln.dev/dockerfile.lines";

// One heredoc of an instruction (`RUN <<EOF` ... `EOF`).
struct Heredoc {
  std::string name;     // the delimiter word, without quotes and without the "-" of <<-
  std::string content;  // the body, ending in "\n" unless empty; tabs stripped for <<-
  bool expand = true;   // false when the delimiter was quoted ('EOF' or "EOF")
  bool chomp = false;   // <<- : leading tabs removed
};

// One instruction (top-level child of the root), or one argument in `next`.
struct Node {
  std::string value;               // instruction: lowercased keyword ("run"); argument: its text
  std::vector<Node> next;          // the instruction's arguments, in BuildKit's split (see Dump)
  std::vector<Node> children;      // root: the instructions; ONBUILD: the nested instruction (1)
  std::vector<std::string> flags;  // "--from=builder", in order; "--" ends flags and is dropped
  std::vector<Heredoc> heredocs;
  std::string original;  // the instruction's source text, continuation lines joined
  bool json = false;     // arguments were a JSON array (exec form)
  int start_line = 0;    // 1-based, inclusive
  int end_line = 0;
  // Comment lines directly above the instruction (without "# "), e.g. for ARG descriptions.
  std::vector<std::string> prev_comment;
};

struct Directives {
  std::optional<std::string> syntax;  // `# syntax=...`
  char escape = '\\';                 // `# escape=`` `` / `\`
  std::optional<std::string> check;   // `# check=skip=...;error=true`
};

// Non-fatal findings, as BuildKit's parser warnings (e.g. an empty continuation line).
struct Warning {
  std::string short_message;  // "Empty continuation line"
  std::string detail;
  int line = 0;
  std::string rule;  // the linter rule it belongs to: "NoEmptyContinuation"
  std::string url;   // the rule's documentation
};

struct Result {
  Node root;  // value empty; children = instructions in order
  Directives directives;
  std::vector<Warning> warnings;
};

// Parses a whole Dockerfile. Errors are INVALID_ARGUMENT naming the line ("dockerfile parse
// error on line 3: unknown instruction: FORM"), like BuildKit's; an empty file (no
// instructions) is an error ("file with no instructions").
[[nodiscard]] absl::StatusOr<Result> Parse(std::string_view dockerfile);

// BuildKit's parser-test dump of a tree: one line per instruction, e.g.
//   (from "busybox")
//   (copy ["--from=x"] "a" "b")
//   (onbuild (run "echo" "hi"))
// Strings are Go-%q quoted. Used by the corpus tests (testfiles/*/result).
std::string Dump(const Node& root);

}  // namespace kiln::dockerfile::parser
