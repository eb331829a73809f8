#include "llb/load.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/digest.h"
#include "llb/internal/load_graph.h"
#include "llb/llb.h"
#include "tests/testutil/status_matchers.h"

namespace kiln::llb {
namespace {

using ::kiln::testing::IsOk;
using ::kiln::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

// Builds definitions op by op, for shapes the builder API would never produce.
class DefBuilder {
 public:
  std::string Add(const pb::Op& op) {
    std::string bytes = SerializeOp(op);
    def_.add_def(bytes);
    return Sha256Digest(bytes);
  }
  std::string AddRaw(std::string bytes) {
    def_.add_def(bytes);
    return Sha256Digest(bytes);
  }
  pb::Definition Finish(const std::string& digest, int64_t index = 0) {
    pb::Op terminal;
    terminal.add_inputs()->set_digest(digest);
    terminal.mutable_inputs(0)->set_index(index);
    Add(terminal);
    return def_;
  }
  pb::Definition& def() { return def_; }

 private:
  pb::Definition def_;
};

pb::Op SourceOp(const std::string& id = "docker-image://docker.io/library/busybox:latest") {
  pb::Op op;
  op.mutable_source()->set_identifier(id);
  return op;
}

pb::Op InputOf(pb::Op op, const std::string& digest, int64_t index = 0) {
  pb::Input* in = op.add_inputs();
  in->set_digest(digest);
  in->set_index(index);
  return op;
}

pb::Op ExecOp(const std::string& base) {
  pb::Op op = InputOf(pb::Op(), base);
  pb::ExecOp* exec = op.mutable_exec();
  exec->mutable_meta()->add_args("true");
  exec->mutable_meta()->set_cwd("/");
  pb::Mount* root = exec->add_mounts();
  root->set_dest("/");
  root->set_input(0);
  root->set_output(0);
  return op;
}

pb::Op MkdirOp(const std::string& path) {
  pb::Op op;
  pb::FileAction* a = op.mutable_file()->add_actions();
  a->set_input(-1);
  a->set_secondaryinput(-1);
  a->set_output(0);
  a->mutable_mkdir()->set_path(path);
  return op;
}

// A definition whose result is `op` on top of a busybox source (when `op` has input 0).
pb::Definition OnSource(pb::Op op) {
  DefBuilder b;
  std::string src = b.Add(SourceOp());
  if (op.inputs_size() == 0 && (op.has_exec() || op.has_merge())) op = InputOf(op, src);
  return b.Finish(b.Add(op));
}

TEST(LoadTest, AcceptsWhatMarshalProduces) {
  State src = Local("context", {.session_id = "s"});
  ExecState run =
      Image("busybox")
          .File(Mkdir("/a", 0755).Copy(src, "/", "/a"))
          .Run({.args = {"ls"}, .mounts = {{.target = "/out"}}, .op = {.custom_name = "ls"}});
  absl::StatusOr<State> out = run.GetMount("/out");
  ASSERT_THAT(out, IsOk());
  absl::StatusOr<pb::Definition> def = Marshal(*out);
  ASSERT_THAT(def, IsOk());

  absl::StatusOr<Graph> graph = LoadDefinition(*def);
  ASSERT_THAT(graph, IsOk());
  ASSERT_EQ(graph->ops().size(), 4u);
  const std::string exec_digest = Sha256Digest(def->def(3));
  EXPECT_EQ(graph->terminal().digest(), exec_digest);
  EXPECT_EQ(graph->terminal().index(), 1);
  EXPECT_EQ(graph->terminal_op_digest(), Sha256Digest(def->def(4)));
  EXPECT_TRUE(graph->terminal_metadata().caps().contains("constraints"));
  const LoadedOp* exec = graph->Find(exec_digest);
  ASSERT_NE(exec, nullptr);
  EXPECT_EQ(exec->num_outputs, 2);
  EXPECT_EQ(exec->bytes, def->def(3));
  EXPECT_EQ(exec->metadata.description().at("llb.customname"), "ls");
  EXPECT_EQ(graph->ops().back().digest, exec_digest);  // topological: the exec comes last
  EXPECT_EQ(graph->Find(graph->terminal_op_digest()), nullptr);
}

TEST(LoadTest, AcceptsIdenticalBytesTwice) {
  DefBuilder b;
  std::string src = b.Add(SourceOp());
  b.Add(SourceOp());
  absl::StatusOr<Graph> graph = LoadDefinition(b.Finish(src));
  ASSERT_THAT(graph, IsOk());
  EXPECT_EQ(graph->ops().size(), 1u);
}

TEST(LoadTest, RejectsOversizedDefinition) {
  DefBuilder b;
  pb::Definition def = b.Finish(b.Add(SourceOp()));
  EXPECT_THAT(LoadDefinition(def, {.max_total_bytes = 50}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("over the limit of 50")));
}

TEST(LoadTest, RejectsTooManyOps) {
  DefBuilder b;
  pb::Definition def = b.Finish(b.Add(SourceOp()));
  EXPECT_THAT(
      LoadDefinition(def, {.max_ops = 1}),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("2 ops, over the limit of 1")));
}

TEST(LoadTest, RejectsEmptyDefinition) {
  EXPECT_THAT(LoadDefinition(pb::Definition()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no terminal")));
}

TEST(LoadTest, RejectsDefinitionWithoutTerminal) {
  DefBuilder b;
  const std::string src = b.Add(SourceOp());
  EXPECT_THAT(LoadDefinition(b.def()), StatusIs(absl::StatusCode::kInvalidArgument,
                                                AllOf(HasSubstr(src), HasSubstr("no terminal"))));
  pb::Op empty;  // no kind, but no input either
  b.Add(empty);
  EXPECT_THAT(LoadDefinition(b.def()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no terminal")));
}

TEST(LoadTest, RejectsUnparseableOpBytes) {
  DefBuilder b;
  const std::string bad = b.AddRaw(std::string("\x0a\xff\xff\xff", 4));
  pb::Definition def = b.Finish(b.Add(SourceOp()));
  EXPECT_THAT(LoadDefinition(def), StatusIs(absl::StatusCode::kInvalidArgument,
                                            AllOf(HasSubstr(bad), HasSubstr("cannot parse"))));
}

TEST(LoadTest, RejectsOpWithUnknownKind) {
  DefBuilder b;
  // Field 9 (length-delimited, empty): a kind this version of the protocol does not know.
  const std::string unknown = b.AddRaw(std::string("\x4a\x00", 2));
  pb::Definition def = b.Finish(b.Add(SourceOp()));
  EXPECT_THAT(LoadDefinition(def), StatusIs(absl::StatusCode::kInvalidArgument,
                                            AllOf(HasSubstr(unknown), HasSubstr("no known kind"))));
}

TEST(LoadTest, RejectsBuildOps) {
  pb::Op build;
  build.mutable_build();
  EXPECT_THAT(LoadDefinition(OnSource(build)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("build ops")));
}

TEST(LoadTest, RejectsInputsNotInDefinition) {
  DefBuilder b;
  const std::string missing = Sha256Digest("not an op");
  const std::string user = b.Add(InputOf(MkdirOp("/x"), missing));
  EXPECT_THAT(LoadDefinition(b.Finish(user)), StatusIs(absl::StatusCode::kInvalidArgument,
                                                       AllOf(HasSubstr(user), HasSubstr(missing),
                                                             HasSubstr("not in the definition"))));
  DefBuilder b2;
  EXPECT_THAT(LoadDefinition(b2.Finish(missing)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("not in the definition")));
}

TEST(LoadTest, RejectsOutputIndexOutOfRange) {
  {
    DefBuilder b;
    const std::string src = b.Add(SourceOp());
    EXPECT_THAT(
        LoadDefinition(b.Finish(src, 1)),
        StatusIs(absl::StatusCode::kInvalidArgument,
                 AllOf(HasSubstr(src), HasSubstr("output index 1"), HasSubstr("1 output"))));
  }
  {
    DefBuilder b;
    const std::string exec = b.Add(ExecOp(b.Add(SourceOp())));  // one output: the root
    EXPECT_THAT(LoadDefinition(b.Finish(exec, 1)),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("output index 1")));
  }
  {
    DefBuilder b;
    const std::string file = b.Add(MkdirOp("/x"));
    const std::string user = b.Add(InputOf(MkdirOp("/y"), file, 3));
    EXPECT_THAT(LoadDefinition(b.Finish(user)),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr(user), HasSubstr("output index 3"))));
  }
}

TEST(LoadTest, RejectsMalformedExec) {
  DefBuilder b;
  const std::string src = b.Add(SourceOp());
  pb::Op no_args = ExecOp(src);
  no_args.mutable_exec()->mutable_meta()->clear_args();
  EXPECT_THAT(LoadDefinition(OnSource(no_args)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no args")));
  pb::Op no_root = ExecOp(src);
  no_root.mutable_exec()->mutable_mounts(0)->set_dest("/x");
  EXPECT_THAT(LoadDefinition(OnSource(no_root)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no root mount")));
  pb::Op bad_input = ExecOp(src);
  bad_input.mutable_exec()->mutable_mounts(0)->set_input(1);
  EXPECT_THAT(LoadDefinition(OnSource(bad_input)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("input 1 is out of range")));
}

TEST(LoadTest, RejectsMalformedFileOps) {
  pb::Op loop = MkdirOp("/a");
  pb::FileAction* second = loop.mutable_file()->add_actions();
  *second = loop.file().actions(0);
  loop.mutable_file()->mutable_actions(0)->set_input(1);  // action 0 reads action 1...
  loop.mutable_file()->mutable_actions(0)->set_output(-1);
  second->set_input(0);  // ...which reads action 0
  EXPECT_THAT(LoadDefinition(OnSource(loop)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("depends on itself")));

  pb::Op dup = MkdirOp("/a");
  *dup.mutable_file()->add_actions() = dup.file().actions(0);
  EXPECT_THAT(LoadDefinition(OnSource(dup)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("duplicated")));

  pb::Op out_of_range = MkdirOp("/a");
  out_of_range.mutable_file()->mutable_actions(0)->set_secondaryinput(5);
  EXPECT_THAT(
      LoadDefinition(OnSource(out_of_range)),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("secondary input 5 is out of range")));

  pb::Op no_actions;
  no_actions.mutable_file();
  EXPECT_THAT(LoadDefinition(OnSource(no_actions)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("no actions")));
}

TEST(LoadTest, RejectsMergeAndDiffInputsOutOfRange) {
  pb::Op merge;
  merge.mutable_merge()->add_inputs()->set_input(1);
  EXPECT_THAT(LoadDefinition(OnSource(merge)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("merge input 1")));
  pb::Op diff;
  diff.mutable_diff()->mutable_lower()->set_input(-1);
  EXPECT_THAT(LoadDefinition(OnSource(diff)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("lower and upper")));
}

TEST(LoadTest, RejectsCycles) {
  // Real SHA-256 digests cannot form a cycle; feed chosen digests to the graph builder.
  const std::string a = "sha256:" + std::string(64, 'a');
  const std::string b = "sha256:" + std::string(64, 'b');
  pb::Op terminal = InputOf(pb::Op(), a);
  std::vector<internal::RawOp> ops{{a, SerializeOp(InputOf(MkdirOp("/a"), b))},
                                   {b, SerializeOp(InputOf(MkdirOp("/b"), a))},
                                   {"sha256:" + std::string(64, 'c'), SerializeOp(terminal)}};
  EXPECT_THAT(internal::BuildGraph(ops, {}),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cycle")));
}

TEST(LoadTest, RejectsOneDigestWithDifferentBytes) {
  const std::string a = "sha256:" + std::string(64, 'a');
  pb::Op terminal = InputOf(pb::Op(), a);
  std::vector<internal::RawOp> ops{{a, SerializeOp(SourceOp("local://x"))},
                                   {a, SerializeOp(SourceOp("local://y"))},
                                   {"sha256:" + std::string(64, 'c'), SerializeOp(terminal)}};
  EXPECT_THAT(internal::BuildGraph(ops, {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr(a), HasSubstr("different bytes"))));
}

TEST(LoadTest, RejectsMetadataForUnknownDigest) {
  DefBuilder b;
  pb::Definition def = b.Finish(b.Add(SourceOp()));
  const std::string stray = Sha256Digest("stray");
  (*def.mutable_metadata())[stray].set_ignore_cache(true);
  EXPECT_THAT(LoadDefinition(def), StatusIs(absl::StatusCode::kInvalidArgument,
                                            AllOf(HasSubstr(stray), HasSubstr("matches no op"))));
}

// Every path field of file and exec ops, with a value that climbs above "/".
struct EscapeCase {
  std::string name;
  pb::Op op;
  std::string path;
};

std::vector<EscapeCase> EscapeCases() {
  std::vector<EscapeCase> cases;
  auto file = [](auto set) {
    pb::Op op = MkdirOp("/ok");
    set(op.mutable_file()->mutable_actions(0));
    return op;
  };
  cases.push_back({"mkdir", MkdirOp("/../x"), "/../x"});
  cases.push_back({"mkfile",
                   file([](pb::FileAction* a) { a->mutable_mkfile()->set_path("a/../../b"); }),
                   "a/../../b"});
  cases.push_back({"rm", file([](pb::FileAction* a) { a->mutable_rm()->set_path("/.."); }), "/.."});
  cases.push_back({"copy src", file([](pb::FileAction* a) {
                     a->mutable_copy()->set_src("/../../etc/passwd");
                     a->mutable_copy()->set_dest("/x");
                   }),
                   "/../../etc/passwd"});
  cases.push_back({"copy dest", file([](pb::FileAction* a) {
                     a->mutable_copy()->set_src("/x");
                     a->mutable_copy()->set_dest("../x");
                   }),
                   "../x"});
  cases.push_back({"symlink newpath", file([](pb::FileAction* a) {
                     a->mutable_symlink()->set_oldpath("t");
                     a->mutable_symlink()->set_newpath("/a/../../l");
                   }),
                   "/a/../../l"});
  pb::Op cwd = ExecOp("");
  cwd.mutable_exec()->mutable_meta()->set_cwd("/..");
  cases.push_back({"exec cwd", cwd, "/.."});
  pb::Op target = ExecOp("");
  pb::Mount* m = target.mutable_exec()->add_mounts();
  m->set_dest("/../../x");
  m->set_input(-1);
  cases.push_back({"mount target", target, "/../../x"});
  pb::Op selector = ExecOp("");
  selector.mutable_exec()->mutable_mounts(0)->set_selector("../x");
  cases.push_back({"selector", selector, "../x"});
  return cases;
}

TEST(LoadTest, RejectsPathsThatEscapeTheRoot) {
  for (EscapeCase c : EscapeCases()) {
    SCOPED_TRACE(c.name);
    DefBuilder b;
    const std::string src = b.Add(SourceOp());
    if (c.op.has_exec()) c.op.mutable_inputs(0)->set_digest(src);
    const std::string digest = b.Add(c.op);
    EXPECT_THAT(LoadDefinition(b.Finish(digest)),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         AllOf(HasSubstr(digest), HasSubstr("\"" + c.path + "\""),
                               HasSubstr("escapes the root"))));
  }
}

TEST(LoadTest, AcceptsDotDotThatStaysInside) {
  pb::Op op = MkdirOp("/a/../b");
  pb::FileAction* link = op.mutable_file()->add_actions();
  link->set_input(0);
  link->set_secondaryinput(-1);
  link->set_output(-1);
  link->mutable_symlink()->set_oldpath("../../anywhere");  // link targets are not paths we open
  link->mutable_symlink()->set_newpath("/b/l");
  EXPECT_THAT(LoadDefinition(OnSource(op)), IsOk());
}

TEST(LoadTest, RejectsNulBytes) {
  pb::Op mkdir = MkdirOp(std::string("/a\0b", 4));
  EXPECT_THAT(LoadDefinition(OnSource(mkdir)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("NUL")));
  DefBuilder b;
  pb::Op exec = ExecOp(b.Add(SourceOp()));
  exec.mutable_exec()->mutable_meta()->add_args(std::string("a\0", 2));
  EXPECT_THAT(LoadDefinition(b.Finish(b.Add(exec))),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("exec arg contains a NUL")));
}

}  // namespace
}  // namespace kiln::llb
