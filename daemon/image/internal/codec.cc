#include "daemon/image/internal/codec.h"

#include <zlib.h>
#include <zstd.h>

#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status.h"

namespace kiln::image::internal {
namespace {

constexpr size_t kOutChunk = 256 * 1024;

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.substr(0, prefix.size()) == prefix;
}

class GzipEncoder : public Encoder {
 public:
  explicit GzipEncoder(std::function<absl::Status(std::string_view)> sink)
      : sink_(std::move(sink)), out_(kOutChunk, '\0') {}
  ~GzipEncoder() override {
    if (initialized_) deflateEnd(&z_);
  }

  absl::Status Init(int level) {
    if (deflateInit2(&z_, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
      return absl::InvalidArgumentError(absl::StrCat("gzip: invalid compression level ", level));
    }
    initialized_ = true;
    // No name, no time, OS "unknown": the bytes depend on the data and the level only.
    std::memset(&header_, 0, sizeof(header_));
    header_.os = 255;
    if (deflateSetHeader(&z_, &header_) != Z_OK) return absl::InternalError("gzip: set header");
    return absl::OkStatus();
  }

  absl::Status Write(std::string_view data) override { return Run(data, Z_NO_FLUSH); }
  absl::Status Finish() override { return Run({}, Z_FINISH); }

 private:
  absl::Status Run(std::string_view data, int flush) {
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    z_.avail_in = static_cast<uInt>(data.size());
    for (;;) {
      z_.next_out = reinterpret_cast<Bytef*>(out_.data());
      z_.avail_out = static_cast<uInt>(out_.size());
      const int rc = deflate(&z_, flush);
      if (rc == Z_STREAM_ERROR) return absl::InternalError("gzip: deflate failed");
      const size_t n = out_.size() - z_.avail_out;
      if (n > 0) KILN_RETURN_IF_ERROR(sink_(std::string_view(out_.data(), n)));
      if (flush == Z_FINISH ? rc == Z_STREAM_END : (z_.avail_in == 0 && z_.avail_out != 0)) {
        return absl::OkStatus();
      }
    }
  }

  std::function<absl::Status(std::string_view)> sink_;
  std::string out_;
  z_stream z_{};
  gz_header header_{};
  bool initialized_ = false;
};

class ZstdEncoder : public Encoder {
 public:
  explicit ZstdEncoder(std::function<absl::Status(std::string_view)> sink)
      : sink_(std::move(sink)), out_(ZSTD_CStreamOutSize(), '\0') {}
  ~ZstdEncoder() override { ZSTD_freeCCtx(cctx_); }

  absl::Status Init(int level) {
    cctx_ = ZSTD_createCCtx();
    if (cctx_ == nullptr) return absl::ResourceExhaustedError("zstd: out of memory");
    if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()) {
      return absl::InvalidArgumentError(absl::StrCat("zstd: invalid compression level ", level));
    }
    if (ZSTD_isError(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 1))) {
      return absl::InternalError("zstd: cannot set parameters");
    }
    // One worker thread compresses while the caller produces the tar stream. The output of
    // libzstd's multithreaded mode does not depend on the number of workers.
    (void)ZSTD_CCtx_setParameter(cctx_, ZSTD_c_nbWorkers, 1);
    return absl::OkStatus();
  }

  absl::Status Write(std::string_view data) override {
    ZSTD_inBuffer in{data.data(), data.size(), 0};
    while (in.pos < in.size) KILN_RETURN_IF_ERROR(Step(in, ZSTD_e_continue).status());
    return absl::OkStatus();
  }
  absl::Status Finish() override {
    ZSTD_inBuffer in{nullptr, 0, 0};
    for (;;) {
      KILN_ASSIGN_OR_RETURN(size_t left, Step(in, ZSTD_e_end));
      if (left == 0) return absl::OkStatus();
    }
  }

 private:
  absl::StatusOr<size_t> Step(ZSTD_inBuffer& in, ZSTD_EndDirective mode) {
    ZSTD_outBuffer out{out_.data(), out_.size(), 0};
    const size_t rc = ZSTD_compressStream2(cctx_, &out, &in, mode);
    if (ZSTD_isError(rc)) return absl::InternalError(absl::StrCat("zstd: ", ZSTD_getErrorName(rc)));
    if (out.pos > 0) KILN_RETURN_IF_ERROR(sink_(std::string_view(out_.data(), out.pos)));
    return rc;
  }

  std::function<absl::Status(std::string_view)> sink_;
  std::string out_;
  ZSTD_CCtx* cctx_ = nullptr;
};

class PlainEncoder : public Encoder {
 public:
  explicit PlainEncoder(std::function<absl::Status(std::string_view)> sink)
      : sink_(std::move(sink)) {}
  absl::Status Write(std::string_view data) override { return sink_(data); }
  absl::Status Finish() override { return absl::OkStatus(); }

 private:
  std::function<absl::Status(std::string_view)> sink_;
};

class GzipDecoder : public Decoder {
 public:
  ~GzipDecoder() override {
    if (initialized_) inflateEnd(&z_);
  }
  absl::Status Init() {
    if (inflateInit2(&z_, 15 + 16) != Z_OK) return absl::ResourceExhaustedError("gzip: init");
    initialized_ = true;
    return absl::OkStatus();
  }

  absl::StatusOr<size_t> Decode(std::string_view& in, char* out, size_t cap) override {
    if (ended_ && !in.empty()) {
      // Another member follows (multistream, as Go's gzip.Reader).
      if (inflateReset(&z_) != Z_OK) return absl::InternalError("gzip: reset");
      ended_ = false;
    }
    if (in.empty() && !started_) return 0;
    z_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z_.avail_in = static_cast<uInt>(in.size());
    z_.next_out = reinterpret_cast<Bytef*>(out);
    z_.avail_out = static_cast<uInt>(cap);
    const int rc = inflate(&z_, Z_NO_FLUSH);
    const size_t consumed = in.size() - z_.avail_in;
    in.remove_prefix(consumed);
    if (consumed > 0) started_ = true;
    if (rc == Z_STREAM_END) {
      ended_ = true;
    } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
      return absl::DataLossError(
          absl::StrCat("gzip: ", z_.msg != nullptr ? z_.msg : "invalid compressed data"));
    }
    return cap - z_.avail_out;
  }

  absl::Status Finish() override {
    if (started_ && !ended_) return absl::DataLossError("gzip: unexpected end of stream");
    return absl::OkStatus();
  }

 private:
  z_stream z_{};
  bool initialized_ = false;
  bool started_ = false;  // some input was consumed since the start or the last member's end
  bool ended_ = false;
};

class ZstdDecoder : public Decoder {
 public:
  ~ZstdDecoder() override { ZSTD_freeDCtx(dctx_); }
  absl::Status Init() {
    dctx_ = ZSTD_createDCtx();
    if (dctx_ == nullptr) return absl::ResourceExhaustedError("zstd: out of memory");
    return absl::OkStatus();
  }

  absl::StatusOr<size_t> Decode(std::string_view& in, char* out, size_t cap) override {
    ZSTD_inBuffer ib{in.data(), in.size(), 0};
    ZSTD_outBuffer ob{out, cap, 0};
    const size_t rc = ZSTD_decompressStream(dctx_, &ob, &ib);
    in.remove_prefix(ib.pos);
    if (ZSTD_isError(rc)) return absl::DataLossError(absl::StrCat("zstd: ", ZSTD_getErrorName(rc)));
    if (ib.pos > 0 || ob.pos > 0) pending_ = rc != 0;
    return ob.pos;
  }

  absl::Status Finish() override {
    if (pending_) return absl::DataLossError("zstd: unexpected end of stream");
    return absl::OkStatus();
  }

 private:
  ZSTD_DCtx* dctx_ = nullptr;
  bool pending_ = false;  // inside a frame
};

class PlainDecoder : public Decoder {
 public:
  absl::StatusOr<size_t> Decode(std::string_view& in, char* out, size_t cap) override {
    const size_t n = std::min(cap, in.size());
    std::memcpy(out, in.data(), n);
    in.remove_prefix(n);
    return n;
  }
  absl::Status Finish() override { return absl::OkStatus(); }
};

}  // namespace

absl::StatusOr<Compression> DetectCompression(std::string_view head) {
  if (StartsWith(head, "\x1f\x8b")) return Compression::kGzip;
  if (StartsWith(head, "\x28\xb5\x2f\xfd")) return Compression::kZstd;
  if (StartsWith(head, "BZh")) return absl::UnimplementedError("bzip2 layers are not supported");
  if (StartsWith(head,
                 "\xfd"
                 "7zXZ"))
    return absl::UnimplementedError("xz layers are not supported");
  return Compression::kUncompressed;
}

absl::StatusOr<std::unique_ptr<Encoder>> NewEncoder(
    Compression compression, int level, std::function<absl::Status(std::string_view)> sink) {
  switch (compression) {
    case Compression::kGzip: {
      auto e = std::make_unique<GzipEncoder>(std::move(sink));
      KILN_RETURN_IF_ERROR(e->Init(level));
      return e;
    }
    case Compression::kZstd: {
      auto e = std::make_unique<ZstdEncoder>(std::move(sink));
      KILN_RETURN_IF_ERROR(e->Init(level));
      return e;
    }
    case Compression::kUncompressed:
      break;
  }
  return std::make_unique<PlainEncoder>(std::move(sink));
}

absl::StatusOr<std::unique_ptr<Decoder>> NewDecoder(Compression compression) {
  switch (compression) {
    case Compression::kGzip: {
      auto d = std::make_unique<GzipDecoder>();
      KILN_RETURN_IF_ERROR(d->Init());
      return d;
    }
    case Compression::kZstd: {
      auto d = std::make_unique<ZstdDecoder>();
      KILN_RETURN_IF_ERROR(d->Init());
      return d;
    }
    case Compression::kUncompressed:
      break;
  }
  return std::make_unique<PlainDecoder>();
}

}  // namespace kiln::image::internal
