// Round-trip and wire-format tests for kiln's BuildKit-compatible protos.
//
// The golden byte strings below are hand-encoded from BuildKit v0.24's field
// numbers and wire types, so a renumbered or retyped field fails here.

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include <gmock/gmock.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "proto/fsutil/types/stat.pb.h"
#include "proto/fsutil/types/wire.pb.h"
#include "proto/google/rpc/status.pb.h"
#include "proto/grpc/health/v1/health.grpc.pb.h"
#include "proto/moby/buildkit/secrets/v1/secrets.grpc.pb.h"
#include "proto/moby/buildkit/v1/apicaps/caps.pb.h"
#include "proto/moby/buildkit/v1/control.grpc.pb.h"
#include "proto/moby/buildkit/v1/frontend/gateway.grpc.pb.h"
#include "proto/moby/buildkit/v1/sourcepolicy/policy.pb.h"
#include "proto/moby/buildkit/v1/types/worker.pb.h"
#include "proto/moby/filesync/v1/auth.grpc.pb.h"
#include "proto/moby/filesync/v1/filesync.grpc.pb.h"
#include "proto/moby/sshforward/v1/ssh.grpc.pb.h"
#include "proto/pb/ops.pb.h"

namespace {

using ::google::protobuf::Message;
using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;

std::string Bytes(std::initializer_list<uint8_t> b) { return std::string(b.begin(), b.end()); }

// Serializes `in`, parses the bytes into a fresh T and checks equality.
template <typename T>
T RoundTrip(const T& in) {
  std::string wire;
  EXPECT_TRUE(in.SerializeToString(&wire));
  T out;
  EXPECT_TRUE(out.ParseFromString(wire));
  EXPECT_TRUE(MessageDifferencer::Equals(in, out)) << "in:\n"
                                                   << in.DebugString() << "out:\n"
                                                   << out.DebugString();
  return out;
}

// Deterministic (map-key sorted) serialization, as used for LLB digests.
std::string Deterministic(const Message& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream sos(&out);
    google::protobuf::io::CodedOutputStream cos(&sos);
    cos.SetSerializationDeterministic(true);
    EXPECT_TRUE(m.SerializeToCodedStream(&cos));
  }
  return out;
}

pb::Op MakeExecOp() {
  pb::Op op;
  auto* in = op.add_inputs();
  in->set_digest("sha256:0123");
  in->set_index(0);

  auto* exec = op.mutable_exec();
  auto* meta = exec->mutable_meta();
  meta->add_args("/bin/sh");
  meta->add_args("-c");
  meta->add_args("make");
  meta->add_env("PATH=/usr/bin:/bin");
  meta->set_cwd("/src");
  meta->set_user("1000:1000");
  meta->mutable_proxy_env()->set_https_proxy("http://proxy:3128");
  auto* host = meta->add_extrahosts();
  host->set_host("registry.local");
  host->set_ip("10.0.0.2");
  auto* ul = meta->add_ulimit();
  ul->set_name("nofile");
  ul->set_soft(1024);
  ul->set_hard(4096);
  meta->add_validexitcodes(0);
  meta->add_validexitcodes(3);

  auto* root = exec->add_mounts();
  root->set_input(0);
  root->set_dest("/");
  root->set_output(0);

  auto* cache = exec->add_mounts();
  cache->set_input(-1);
  cache->set_dest("/root/.cache");
  cache->set_output(-1);
  cache->set_mounttype(pb::CACHE);
  cache->mutable_cacheopt()->set_id("go-build");
  cache->mutable_cacheopt()->set_sharing(pb::LOCKED);
  cache->set_contentcache(pb::ON);

  auto* secret = exec->add_mounts();
  secret->set_input(-1);
  secret->set_dest("/run/secrets/token");
  secret->set_mounttype(pb::SECRET);
  secret->mutable_secretopt()->set_id("token");
  secret->mutable_secretopt()->set_mode(0400);
  secret->mutable_secretopt()->set_optional(true);

  auto* ssh = exec->add_mounts();
  ssh->set_mounttype(pb::SSH);
  ssh->mutable_sshopt()->set_id("default");
  ssh->mutable_sshopt()->set_uid(1000);

  auto* tmp = exec->add_mounts();
  tmp->set_mounttype(pb::TMPFS);
  tmp->set_dest("/tmp");
  tmp->mutable_tmpfsopt()->set_size(64 << 20);

  exec->set_network(pb::HOST);
  exec->set_security(pb::INSECURE);
  auto* senv = exec->add_secretenv();
  senv->set_id("npm");
  senv->set_name("NPM_TOKEN");
  auto* cdi = exec->add_cdidevices();
  cdi->set_name("nvidia.com/gpu=all");

  op.mutable_platform()->set_architecture("arm64");
  op.mutable_platform()->set_os("linux");
  op.mutable_platform()->set_variant("v8");
  op.mutable_constraints()->add_filter("os==linux");
  return op;
}

pb::Op MakeFileOp() {
  pb::Op op;
  op.add_inputs()->set_digest("sha256:aaaa");
  op.add_inputs()->set_digest("sha256:bbbb");
  auto* file = op.mutable_file();

  auto* mkdir = file->add_actions();
  mkdir->set_input(0);
  mkdir->set_secondaryinput(-1);
  mkdir->set_output(-1);
  mkdir->mutable_mkdir()->set_path("/app");
  mkdir->mutable_mkdir()->set_mode(0755);
  mkdir->mutable_mkdir()->set_makeparents(true);
  auto* by_name = mkdir->mutable_mkdir()->mutable_owner()->mutable_user()->mutable_byname();
  by_name->set_name("app");
  by_name->set_input(0);
  mkdir->mutable_mkdir()->mutable_owner()->mutable_group()->set_byid(1000);

  auto* copy = file->add_actions();
  copy->set_input(2);  // output of the previous action
  copy->set_secondaryinput(1);
  copy->set_output(-1);
  auto* c = copy->mutable_copy();
  c->set_src("/src/*.go");
  c->set_dest("/app/");
  c->set_allowwildcard(true);
  c->set_createdestpath(true);
  c->set_dircopycontents(true);
  c->add_include_patterns("**/*.go");
  c->add_exclude_patterns("vendor/");
  c->set_modestr("u+x");
  c->set_timestamp(1700000000000000000);

  auto* mkfile = file->add_actions();
  mkfile->set_input(3);
  mkfile->set_secondaryinput(-1);
  mkfile->set_output(-1);
  mkfile->mutable_mkfile()->set_path("/app/VERSION");
  mkfile->mutable_mkfile()->set_mode(0644);
  mkfile->mutable_mkfile()->set_data(std::string("1.0\n\0", 5));

  auto* sym = file->add_actions();
  sym->set_input(4);
  sym->set_secondaryinput(-1);
  sym->set_output(-1);
  sym->mutable_symlink()->set_oldpath("VERSION");
  sym->mutable_symlink()->set_newpath("/app/version");

  auto* rm = file->add_actions();
  rm->set_input(5);
  rm->set_secondaryinput(-1);
  rm->set_output(0);
  rm->mutable_rm()->set_path("/app/*.tmp");
  rm->mutable_rm()->set_allownotfound(true);
  rm->mutable_rm()->set_allowwildcard(true);
  return op;
}

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

TEST(ProtoRoundTripTest, SolveRequestWithDefinitionMapsAndCache) {
  pb::Op source;
  source.mutable_source()->set_identifier("docker-image://docker.io/library/alpine:3.20");
  (*source.mutable_source()->mutable_attrs())["image.recordtype"] = "internal";
  pb::Op exec = MakeExecOp();

  moby::buildkit::v1::SolveRequest req;
  req.set_ref("build-ref-1");
  auto* def = req.mutable_definition();
  def->add_def(Deterministic(source));
  def->add_def(Deterministic(exec));
  auto& md = (*def->mutable_metadata())["sha256:0123"];
  md.set_ignore_cache(true);
  (*md.mutable_description())["llb.customname"] = "RUN make";
  (*md.mutable_caps())["exec.meta.base"] = true;
  md.mutable_export_cache()->set_value(true);
  md.mutable_progress_group()->set_id("pg1");
  auto* info = def->mutable_source()->add_infos();
  info->set_filename("Dockerfile");
  info->set_language("Dockerfile");
  info->set_data("FROM alpine\n");
  auto& loc = (*def->mutable_source()->mutable_locations())["sha256:0123"];
  auto* range = loc.add_locations()->add_ranges();
  range->mutable_start()->set_line(1);
  range->mutable_end()->set_line(1);
  range->mutable_end()->set_character(11);

  req.set_exporterdeprecated("image");
  (*req.mutable_exporterattrsdeprecated())["name"] = "example/app";
  req.set_session("sess-1");
  req.set_frontend("dockerfile.v0");
  (*req.mutable_frontendattrs())["target"] = "release";
  (*req.mutable_frontendattrs())["build-arg:FOO"] = "bar";
  req.add_entitlements("network.host");
  (*req.mutable_frontendinputs())["context"] = *def;
  req.set_internal(true);

  auto* cache = req.mutable_cache();
  cache->set_exportrefdeprecated("example/cache");
  cache->add_importrefsdeprecated("example/cache:old");
  (*cache->mutable_exportattrsdeprecated())["mode"] = "max";
  auto* exp = cache->add_exports();
  exp->set_type("registry");
  (*exp->mutable_attrs())["ref"] = "example.com:5000/foo/bar";
  (*exp->mutable_attrs())["mode"] = "max";
  auto* imp = cache->add_imports();
  imp->set_type("local");
  (*imp->mutable_attrs())["src"] = "/var/cache";

  auto* policy = req.mutable_sourcepolicy();
  policy->set_version(1);
  auto* rule = policy->add_rules();
  rule->set_action(moby::buildkit::v1::sourcepolicy::CONVERT);
  rule->mutable_selector()->set_identifier("docker-image://alpine:*");
  rule->mutable_selector()->set_match_type(moby::buildkit::v1::sourcepolicy::WILDCARD);
  auto* cons = rule->mutable_selector()->add_constraints();
  cons->set_key("platform");
  cons->set_value("linux/.*");
  cons->set_condition(moby::buildkit::v1::sourcepolicy::MATCHES);
  rule->mutable_updates()->set_identifier("docker-image://alpine:3.20@sha256:abcd");

  auto* exporter = req.add_exporters();
  exporter->set_type("local");
  (*exporter->mutable_attrs())["dest"] = "/out";
  req.set_enablesessionexporter(true);

  moby::buildkit::v1::SolveRequest out = RoundTrip(req);
  ASSERT_EQ(out.definition().def_size(), 2);
  pb::Op exec_back;
  ASSERT_TRUE(exec_back.ParseFromString(out.definition().def(1)));
  EXPECT_TRUE(MessageDifferencer::Equals(exec_back, exec));
  EXPECT_EQ(out.frontendattrs().at("target"), "release");
  EXPECT_EQ(out.cache().exports(0).attrs().at("ref"), "example.com:5000/foo/bar");
  EXPECT_EQ(out.cache().imports(0).type(), "local");
  EXPECT_EQ(out.sourcepolicy().rules(0).selector().constraints(0).condition(),
            moby::buildkit::v1::sourcepolicy::MATCHES);
  EXPECT_TRUE(out.definition().metadata().at("sha256:0123").caps().at("exec.meta.base"));
}

TEST(ProtoRoundTripTest, ExecOpWithMounts) {
  pb::Op op = MakeExecOp();
  pb::Op out = RoundTrip(op);
  ASSERT_EQ(out.op_case(), pb::Op::kExec);
  ASSERT_EQ(out.exec().mounts_size(), 5);
  EXPECT_EQ(out.exec().mounts(1).mounttype(), pb::CACHE);
  EXPECT_EQ(out.exec().mounts(1).cacheopt().sharing(), pb::LOCKED);
  EXPECT_EQ(out.exec().mounts(2).secretopt().mode(), 0400u);
  EXPECT_EQ(out.exec().mounts(4).tmpfsopt().size(), 64 << 20);
  EXPECT_THAT(out.exec().meta().args(), ElementsAre("/bin/sh", "-c", "make"));
  EXPECT_THAT(out.exec().meta().validexitcodes(), ElementsAre(0, 3));
  EXPECT_EQ(out.platform().os(), "linux");
}

TEST(ProtoRoundTripTest, FileOpActions) {
  pb::Op op = MakeFileOp();
  pb::Op out = RoundTrip(op);
  ASSERT_EQ(out.op_case(), pb::Op::kFile);
  const auto& actions = out.file().actions();
  ASSERT_EQ(actions.size(), 5);
  EXPECT_EQ(actions[0].action_case(), pb::FileAction::kMkdir);
  EXPECT_EQ(actions[0].mkdir().owner().user().byname().name(), "app");
  EXPECT_EQ(actions[0].mkdir().owner().group().user_case(), pb::UserOpt::kByID);
  EXPECT_EQ(actions[0].mkdir().owner().group().byid(), 1000u);
  EXPECT_EQ(actions[1].action_case(), pb::FileAction::kCopy);
  EXPECT_THAT(actions[1].copy().include_patterns(), ElementsAre("**/*.go"));
  EXPECT_EQ(actions[2].mkfile().data(), std::string("1.0\n\0", 5));
  EXPECT_EQ(actions[3].action_case(), pb::FileAction::kSymlink);
  EXPECT_EQ(actions[4].action_case(), pb::FileAction::kRm);
}

TEST(ProtoRoundTripTest, MergeDiffAndBuildOps) {
  pb::Op merge;
  merge.mutable_merge()->add_inputs()->set_input(0);
  merge.mutable_merge()->add_inputs()->set_input(1);
  EXPECT_EQ(RoundTrip(merge).merge().inputs(1).input(), 1);

  pb::Op diff;
  diff.mutable_diff()->mutable_lower()->set_input(0);
  diff.mutable_diff()->mutable_upper()->set_input(1);
  EXPECT_EQ(RoundTrip(diff).diff().upper().input(), 1);

  pb::Op build;
  build.mutable_build()->set_builder(0);
  (*build.mutable_build()->mutable_inputs())["context"].set_input(1);
  (*build.mutable_build()->mutable_attrs())["filename"] = "Dockerfile";
  EXPECT_EQ(RoundTrip(build).build().inputs().at("context").input(), 1);
}

TEST(ProtoRoundTripTest, WorkerRecord) {
  moby::buildkit::v1::types::WorkerRecord rec;
  rec.set_id("w0");
  (*rec.mutable_labels())["org.mobyproject.buildkit.worker.executor"] = "oci";
  auto* p = rec.add_platforms();
  p->set_architecture("amd64");
  p->set_os("linux");
  p->add_osfeatures("sse4");
  auto* gc = rec.add_gcpolicy();
  gc->set_all(true);
  gc->set_keepduration(48LL * 3600 * 1000000000);
  gc->add_filters("type==source.local");
  gc->set_reservedspace(10LL << 30);
  gc->set_maxusedspace(100LL << 30);
  gc->set_minfreespace(5LL << 30);
  rec.mutable_buildkitversion()->set_package("github.com/moby/buildkit");
  rec.mutable_buildkitversion()->set_version("v0.24.0");
  rec.mutable_buildkitversion()->set_revision("kiln");
  auto* dev = rec.add_cdidevices();
  dev->set_name("vendor.com/gpu=0");
  dev->set_autoallow(true);
  (*dev->mutable_annotations())["k"] = "v";
  dev->set_ondemand(true);

  moby::buildkit::v1::ListWorkersResponse resp;
  *resp.add_record() = rec;
  auto out = RoundTrip(resp);
  ASSERT_EQ(out.record_size(), 1);
  EXPECT_EQ(out.record(0).platforms(0).architecture(), "amd64");
  EXPECT_EQ(out.record(0).gcpolicy(0).maxusedspace(), 100LL << 30);
  EXPECT_EQ(out.record(0).buildkitversion().package(), "github.com/moby/buildkit");
}

TEST(ProtoRoundTripTest, FsutilPacketWithStat) {
  fsutil::types::Packet pkt;
  pkt.set_type(fsutil::types::Packet::PACKET_STAT);
  pkt.set_id(7);
  auto* st = pkt.mutable_stat();
  st->set_path("dir/file.txt");
  st->set_mode(0100644);
  st->set_uid(1000);
  st->set_gid(1000);
  st->set_size(12345);
  st->set_modtime(1700000000123456789);
  st->set_linkname("");
  st->set_devmajor(0);
  st->set_devminor(0);
  (*st->mutable_xattrs())["user.note"] = std::string("\x00\xff", 2);
  auto out = RoundTrip(pkt);
  EXPECT_EQ(out.stat().path(), "dir/file.txt");
  EXPECT_EQ(out.stat().xattrs().at("user.note"), std::string("\x00\xff", 2));
}

TEST(ProtoRoundTripTest, GatewayAndHistoryMessages) {
  moby::buildkit::v1::frontend::ReturnRequest ret;
  auto* res = ret.mutable_result();
  res->mutable_ref()->set_id("ref-1");
  (*res->mutable_metadata())["containerimage.config"] = "{}";
  auto& atts = (*res->mutable_attestations())["linux/amd64"];
  auto* att = atts.add_attestation();
  att->set_kind(moby::buildkit::v1::frontend::InToto);
  att->set_intotopredicatetype("https://slsa.dev/provenance/v1");
  att->add_intotosubjects()->set_kind(moby::buildkit::v1::frontend::Raw);
  ret.mutable_error()->set_code(2);
  ret.mutable_error()->set_message("boom");
  EXPECT_EQ(RoundTrip(ret).result().result_case(), moby::buildkit::v1::frontend::Result::kRef);

  moby::buildkit::v1::frontend::ExecMessage msg;
  msg.set_processid("p1");
  msg.mutable_file()->set_fd(1);
  msg.mutable_file()->set_eof(true);
  EXPECT_EQ(RoundTrip(msg).Input_case(), moby::buildkit::v1::frontend::ExecMessage::kFile);

  moby::buildkit::v1::BuildHistoryEvent ev;
  ev.set_type(moby::buildkit::v1::COMPLETE);
  auto* rec = ev.mutable_record();
  rec->set_ref("r");
  rec->mutable_createdat()->set_seconds(1700000000);
  rec->mutable_logs()->set_media_type("application/vnd.buildkit.status.v0");
  auto& r = (*rec->mutable_result()->mutable_results())[3];
  r.set_digest("sha256:ffff");
  (*r.mutable_annotations())["a"] = "b";
  rec->set_numwarnings(2);
  EXPECT_EQ(RoundTrip(ev).record().result().results().at(3).digest(), "sha256:ffff");
}

// ---------------------------------------------------------------------------
// Service names
// ---------------------------------------------------------------------------

std::vector<std::string> MethodPaths(const google::protobuf::ServiceDescriptor* svc) {
  std::vector<std::string> out;
  for (int i = 0; i < svc->method_count(); ++i) {
    out.push_back("/" + svc->full_name() + "/" + svc->method(i)->name());
  }
  return out;
}

TEST(ProtoServiceTest, ControlServiceNamesMatchBuildKit) {
  EXPECT_STREQ(moby::buildkit::v1::Control::service_full_name(), "moby.buildkit.v1.Control");
  const auto* svc =
      moby::buildkit::v1::SolveRequest::descriptor()->file()->FindServiceByName("Control");
  ASSERT_NE(svc, nullptr);
  EXPECT_THAT(
      MethodPaths(svc),
      ElementsAre("/moby.buildkit.v1.Control/DiskUsage", "/moby.buildkit.v1.Control/Prune",
                  "/moby.buildkit.v1.Control/Solve", "/moby.buildkit.v1.Control/Status",
                  "/moby.buildkit.v1.Control/Session", "/moby.buildkit.v1.Control/ListWorkers",
                  "/moby.buildkit.v1.Control/Info", "/moby.buildkit.v1.Control/ListenBuildHistory",
                  "/moby.buildkit.v1.Control/UpdateBuildHistory"));

  // Streaming shape: {client_streaming, server_streaming}.
  auto shape = [&](const char* name) {
    const auto* m = svc->FindMethodByName(name);
    EXPECT_NE(m, nullptr) << name;
    return std::make_pair(m->client_streaming(), m->server_streaming());
  };
  EXPECT_EQ(shape("Solve"), std::make_pair(false, false));
  EXPECT_EQ(shape("Prune"), std::make_pair(false, true));
  EXPECT_EQ(shape("Status"), std::make_pair(false, true));
  EXPECT_EQ(shape("Session"), std::make_pair(true, true));
  EXPECT_EQ(shape("ListenBuildHistory"), std::make_pair(false, true));
  EXPECT_EQ(svc->FindMethodByName("Prune")->output_type()->full_name(),
            "moby.buildkit.v1.UsageRecord");
}

TEST(ProtoServiceTest, SessionAndGatewayServiceNames) {
  EXPECT_STREQ(moby::buildkit::v1::frontend::LLBBridge::service_full_name(),
               "moby.buildkit.v1.frontend.LLBBridge");
  EXPECT_STREQ(moby::filesync::v1::FileSync::service_full_name(), "moby.filesync.v1.FileSync");
  EXPECT_STREQ(moby::filesync::v1::FileSend::service_full_name(), "moby.filesync.v1.FileSend");
  EXPECT_STREQ(moby::filesync::v1::Auth::service_full_name(), "moby.filesync.v1.Auth");
  EXPECT_STREQ(moby::buildkit::secrets::v1::Secrets::service_full_name(),
               "moby.buildkit.secrets.v1.Secrets");
  EXPECT_STREQ(moby::sshforward::v1::SSH::service_full_name(), "moby.sshforward.v1.SSH");
  EXPECT_STREQ(grpc::health::v1::Health::service_full_name(), "grpc.health.v1.Health");

  // Referencing a message of each file links its generated descriptor in.
  const auto* fs =
      moby::filesync::v1::BytesMessage::descriptor()->file()->FindServiceByName("FileSync");
  ASSERT_NE(fs, nullptr);
  EXPECT_THAT(MethodPaths(fs), ElementsAre("/moby.filesync.v1.FileSync/DiffCopy",
                                           "/moby.filesync.v1.FileSync/TarStream"));
  EXPECT_EQ(fs->FindMethodByName("DiffCopy")->input_type(), fsutil::types::Packet::descriptor());

  const auto* bridge = moby::buildkit::v1::frontend::ExecMessage::descriptor()->file()->service(0);
  ASSERT_EQ(bridge->full_name(), "moby.buildkit.v1.frontend.LLBBridge");
  EXPECT_EQ(bridge->method_count(), 14);
  EXPECT_TRUE(bridge->FindMethodByName("ExecProcess")->client_streaming());
  EXPECT_TRUE(bridge->FindMethodByName("ExecProcess")->server_streaming());

  const auto* auth = moby::filesync::v1::CredentialsRequest::descriptor()->file()->service(0);
  EXPECT_THAT(MethodPaths(auth),
              ElementsAre("/moby.filesync.v1.Auth/Credentials", "/moby.filesync.v1.Auth/FetchToken",
                          "/moby.filesync.v1.Auth/GetTokenAuthority",
                          "/moby.filesync.v1.Auth/VerifyTokenAuthority"));
  const auto* health = grpc::health::v1::HealthCheckRequest::descriptor()->file()->service(0);
  EXPECT_TRUE(health->FindMethodByName("Watch")->server_streaming());
}

// ---------------------------------------------------------------------------
// Golden wire bytes (hand-encoded from BuildKit field numbers)
// ---------------------------------------------------------------------------

TEST(ProtoWireTest, OpExecIsField2) {
  pb::Op op;
  op.mutable_exec();
  // Op.exec = 2, length-delimited: tag 0x12, empty body.
  EXPECT_EQ(op.SerializeAsString(), Bytes({0x12, 0x00}));

  op.mutable_exec()->mutable_meta()->add_args("sh");
  // exec{ meta(1){ args(1): "sh" } }
  EXPECT_EQ(op.SerializeAsString(), Bytes({0x12, 0x06, 0x0a, 0x04, 0x0a, 0x02, 's', 'h'}));

  pb::Op other;
  other.mutable_file();
  other.mutable_platform()->set_os("linux");
  // Op.file = 4 (0x22); Op.platform = 10 (0x52) { OS = 2 (0x12) }.
  EXPECT_EQ(other.SerializeAsString(),
            Bytes({0x22, 0x00, 0x52, 0x07, 0x12, 0x05, 'l', 'i', 'n', 'u', 'x'}));
}

TEST(ProtoWireTest, MountHighFieldNumbers) {
  // Mount.cacheOpt = 20 -> tag (20<<3)|2 = 162 = varint a2 01;
  // Mount.contentCache = 24 -> tag 192 = varint c0 01; mountType = 6 -> 0x30.
  const std::string wire =
      Bytes({0x30, 0x03, 0xa2, 0x01, 0x06, 0x0a, 0x02, 'g', 'o', 0x10, 0x02, 0xc0, 0x01, 0x02});
  pb::Mount m;
  ASSERT_TRUE(m.ParseFromString(wire));
  EXPECT_EQ(m.mounttype(), pb::CACHE);
  EXPECT_EQ(m.cacheopt().id(), "go");
  EXPECT_EQ(m.cacheopt().sharing(), pb::LOCKED);
  EXPECT_EQ(m.contentcache(), pb::OFF);
  EXPECT_EQ(m.SerializeAsString(), wire);
}

TEST(ProtoWireTest, FileActionOneofFieldNumbers) {
  pb::FileAction a;
  a.set_input(1);
  a.mutable_rm()->set_path("x");
  // input = 1 (0x08), rm = 7 (0x3a) { path = 1 }.
  EXPECT_EQ(a.SerializeAsString(), Bytes({0x08, 0x01, 0x3a, 0x03, 0x0a, 0x01, 'x'}));

  pb::UserOpt u;
  u.set_byid(0);
  // Oneof members are emitted even when zero: byID = 2 varint (0x10).
  EXPECT_EQ(u.SerializeAsString(), Bytes({0x10, 0x00}));
}

TEST(ProtoWireTest, PacketAndStatFieldNumbers) {
  fsutil::types::Packet pkt;
  pkt.set_type(fsutil::types::Packet::PACKET_DATA);
  pkt.set_id(5);
  pkt.set_data("ab");
  // type = 1 varint 2; ID = 3 varint 5; data = 4 bytes.
  EXPECT_EQ(pkt.SerializeAsString(), Bytes({0x08, 0x02, 0x18, 0x05, 0x22, 0x02, 'a', 'b'}));

  EXPECT_EQ(fsutil::types::Packet::PACKET_STAT, 0);
  EXPECT_EQ(fsutil::types::Packet::PACKET_REQ, 1);
  EXPECT_EQ(fsutil::types::Packet::PACKET_DATA, 2);
  EXPECT_EQ(fsutil::types::Packet::PACKET_FIN, 3);
  EXPECT_EQ(fsutil::types::Packet::PACKET_ERR, 4);

  fsutil::types::Stat st;
  st.set_path("a");
  st.set_mode(0755);  // 493 = varint ed 03
  st.set_linkname("b");
  // path = 1, mode = 2 (0x10), linkname = 7 (0x3a).
  EXPECT_EQ(st.SerializeAsString(), Bytes({0x0a, 0x01, 'a', 0x10, 0xed, 0x03, 0x3a, 0x01, 'b'}));

  fsutil::types::Packet with_stat;
  *with_stat.mutable_stat() = st;
  // stat = 2 (0x12); type PACKET_STAT is the zero value and is omitted.
  EXPECT_EQ(with_stat.SerializeAsString().substr(0, 2), Bytes({0x12, 0x09}));
}

TEST(ProtoWireTest, ListWorkersResponseRecordIsField1) {
  moby::buildkit::v1::ListWorkersResponse resp;
  resp.add_record()->set_id("w");
  EXPECT_EQ(resp.SerializeAsString(), Bytes({0x0a, 0x03, 0x0a, 0x01, 'w'}));

  // WorkerRecord.platforms = 3, BuildkitVersion = 5.
  moby::buildkit::v1::types::WorkerRecord rec;
  rec.add_platforms()->set_architecture("x");
  rec.mutable_buildkitversion()->set_version("v");
  EXPECT_EQ(rec.SerializeAsString(),
            Bytes({0x1a, 0x03, 0x0a, 0x01, 'x', 0x2a, 0x03, 0x12, 0x01, 'v'}));
}

TEST(ProtoWireTest, ControlSolveRequestFields) {
  moby::buildkit::v1::SolveRequest req;
  (*req.mutable_frontendattrs())["k"] = "v";
  req.set_frontend("f");
  // Frontend = 6 (0x32); FrontendAttrs = 7 (0x3a) entry { key = 1, value = 2 }.
  EXPECT_EQ(req.SerializeAsString(),
            Bytes({0x32, 0x01, 'f', 0x3a, 0x06, 0x0a, 0x01, 'k', 0x12, 0x01, 'v'}));

  moby::buildkit::v1::CacheOptionsEntry e;
  ASSERT_TRUE(e.ParseFromString(Bytes({0x0a, 0x03, 'g', 'h', 'a'})));
  EXPECT_EQ(e.type(), "gha");
}

TEST(ProtoWireTest, StatusAndExecMessage) {
  google::rpc::Status s;
  s.set_code(5);
  s.set_message("x");
  EXPECT_EQ(s.SerializeAsString(), Bytes({0x08, 0x05, 0x12, 0x01, 'x'}));

  moby::buildkit::v1::frontend::ExecMessage m;
  m.mutable_done();
  // Done = 7 (0x3a).
  EXPECT_EQ(m.SerializeAsString(), Bytes({0x3a, 0x00}));
  m.mutable_exit()->set_code(1);
  // Exit = 6 (0x32) { Code = 1 }.
  EXPECT_EQ(m.SerializeAsString(), Bytes({0x32, 0x02, 0x08, 0x01}));
}

TEST(ProtoWireTest, EnumValues) {
  EXPECT_EQ(pb::UNSET, 0);
  EXPECT_EQ(pb::HOST, 1);
  EXPECT_EQ(pb::NONE, 2);
  EXPECT_EQ(pb::INSECURE, 1);
  EXPECT_EQ(pb::BIND, 0);
  EXPECT_EQ(pb::TMPFS, 4);
  EXPECT_EQ(pb::PRIVATE, 1);
  EXPECT_EQ(pb::OFF, 2);
  EXPECT_EQ(moby::buildkit::v1::DELETED, 2);
  EXPECT_EQ(moby::buildkit::v1::sourcepolicy::CONVERT, 2);
  EXPECT_EQ(moby::buildkit::v1::sourcepolicy::REGEX, 2);
  EXPECT_EQ(moby::buildkit::v1::frontend::Bundle, 1);
  EXPECT_EQ(grpc::health::v1::HealthCheckResponse::SERVICE_UNKNOWN, 3);
}

// ---------------------------------------------------------------------------
// Forward compatibility
// ---------------------------------------------------------------------------

TEST(ProtoCompatTest, UnknownFieldsSurviveReserialize) {
  pb::Op op;
  op.mutable_exec()->mutable_meta()->add_args("true");
  const std::string known = op.SerializeAsString();
  // Field 50 varint 1; field 51 bytes "zz" -- not defined in our schema.
  const std::string unknown = Bytes({0x90, 0x03, 0x01, 0x9a, 0x03, 0x02, 'z', 'z'});

  pb::Op parsed;
  ASSERT_TRUE(parsed.ParseFromString(known + unknown));
  EXPECT_EQ(parsed.exec().meta().args(0), "true");
  EXPECT_EQ(parsed.SerializeAsString(), known + unknown);

  // Nested: an unknown field inside Meta (field 8 is unused upstream).
  const std::string meta_unknown = Bytes({0x40, 0x07});
  pb::Meta meta;
  ASSERT_TRUE(meta.ParseFromString(Bytes({0x0a, 0x01, 'a'}) + meta_unknown));
  pb::ExecOp exec;
  *exec.mutable_meta() = meta;
  pb::ExecOp exec_back;
  ASSERT_TRUE(exec_back.ParseFromString(exec.SerializeAsString()));
  EXPECT_EQ(exec_back.meta().SerializeAsString(), Bytes({0x0a, 0x01, 'a'}) + meta_unknown);

  // Unknown enum values are kept as-is (proto3 open enums).
  pb::Mount m;
  ASSERT_TRUE(m.ParseFromString(Bytes({0x30, 0x09})));
  EXPECT_EQ(static_cast<int>(m.mounttype()), 9);
  EXPECT_EQ(m.SerializeAsString(), Bytes({0x30, 0x09}));
}

TEST(ProtoCompatTest, DeterministicSerializationSortsMapKeys) {
  pb::SourceOp a;
  (*a.mutable_attrs())["b"] = "2";
  (*a.mutable_attrs())["a"] = "1";
  pb::SourceOp b;
  (*b.mutable_attrs())["a"] = "1";
  (*b.mutable_attrs())["b"] = "2";
  EXPECT_EQ(Deterministic(a), Deterministic(b));
  // attrs = 2 (0x12) entries in key order "a", "b".
  EXPECT_EQ(Deterministic(a), Bytes({0x12, 0x06, 0x0a, 0x01, 'a', 0x12, 0x01, '1', 0x12, 0x06, 0x0a,
                                     0x01, 'b', 0x12, 0x01, '2'}));
}

}  // namespace
