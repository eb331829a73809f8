#pragma once
// Media types of OCI and Docker image objects, as the image-spec and Docker's schema2 name them.

namespace kiln::image {

inline constexpr char kOciLayoutVersion[] = "1.0.0";

// OCI image-spec.
inline constexpr char kOciIndex[] = "application/vnd.oci.image.index.v1+json";
inline constexpr char kOciManifest[] = "application/vnd.oci.image.manifest.v1+json";
inline constexpr char kOciConfig[] = "application/vnd.oci.image.config.v1+json";
inline constexpr char kOciLayer[] = "application/vnd.oci.image.layer.v1.tar";
inline constexpr char kOciLayerGzip[] = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr char kOciLayerZstd[] = "application/vnd.oci.image.layer.v1.tar+zstd";
inline constexpr char kOciLayerNondistributable[] =
    "application/vnd.oci.image.layer.nondistributable.v1.tar";
inline constexpr char kOciLayerNondistributableGzip[] =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
inline constexpr char kOciLayerNondistributableZstd[] =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

// Docker image manifest v2, schema 2. Docker has no zstd layer type: zstd layers always carry
// the OCI type, as BuildKit does.
inline constexpr char kDockerManifestList[] =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr char kDockerManifest[] = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr char kDockerConfig[] = "application/vnd.docker.container.image.v1+json";
inline constexpr char kDockerLayerGzip[] = "application/vnd.docker.image.rootfs.diff.tar.gzip";
inline constexpr char kDockerLayerForeignGzip[] =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
// Not in the schema2 spec, but written by some tools for uncompressed layers.
inline constexpr char kDockerLayer[] = "application/vnd.docker.image.rootfs.diff.tar";

// Annotations.
inline constexpr char kAnnotationRefName[] = "org.opencontainers.image.ref.name";
inline constexpr char kAnnotationCreated[] = "org.opencontainers.image.created";
inline constexpr char kAnnotationImageName[] = "io.containerd.image.name";

}  // namespace kiln::image
