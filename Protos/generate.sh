#!/usr/bin/env bash
# Regenerates the Swift code for Protos/vigil/v1/*.proto into
# Sources/VigilProto/Generated/ and records the fingerprint that the test
# `GeneratedCodeTests` compares (so a stale or hand-edited file fails `swift test`).
#
# Needs `protoc` (Debian: protobuf-compiler). `protoc-gen-swift` is taken from
# $PROTOC_GEN_SWIFT, else from PATH, else built once from the swift-protobuf
# 1.39.0 checkout that SwiftPM resolved (about a minute).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=Sources/VigilProto/Generated

plugin=${PROTOC_GEN_SWIFT:-$(command -v protoc-gen-swift || true)}
if [ -z "$plugin" ]; then
  src=.build-protoc/swift-protobuf
  if [ ! -x "$src/.build/release/protoc-gen-swift" ]; then
    swift package resolve >/dev/null
    rm -rf "$src" && mkdir -p .build-protoc
    git clone -q .build/checkouts/swift-protobuf "$src"
    git -C "$src" checkout -q 1.39.0 2>/dev/null || true
    (cd "$src" && swift build -c release --product protoc-gen-swift)
  fi
  plugin=$src/.build/release/protoc-gen-swift
fi

rm -f "$out"/*.pb.swift
protoc --plugin=protoc-gen-swift="$plugin" \
  --swift_opt=Visibility=Public --swift_opt=FileNaming=DropPath \
  --swift_out="$out" -I Protos Protos/vigil/v1/*.proto

# The fingerprint: sha256 of every .proto and every generated file, in name order.
(cd Protos && sha256sum vigil/v1/*.proto) > "$out/FINGERPRINT"
(cd "$out" && sha256sum *.pb.swift) >> "$out/FINGERPRINT"
echo "generated: $(ls "$out"/*.pb.swift | xargs -n1 basename | tr '\n' ' ')"
