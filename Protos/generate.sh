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

# One change to protoc-gen-swift's output: the stored properties of its
# storage classes (messages with many fields, such as AuditEvent, keep them in
# a class for copy-on-write) are marked `@exclusivity(unchecked)`. A class's
# stored properties are otherwise checked for overlapping access at run time
# on every read and write (swift_beginAccess, a thread-local access set);
# decoding a page of 100 events in the Swift client spent about a tenth of
# its time there, most of it copying each new event's empty default storage
# on its first write. Those checks cannot fire here: the class is private to
# its message, reached only through the message's accessors, and written only
# after `_uniqueStorage()` made it the message's own (value semantics).
for file in "$out"/*.pb.swift; do
  awk '
    /^  fileprivate class _StorageClass \{$/ { inStorage = 1 }
    inStorage && /^  }$/ { inStorage = 0 }
    inStorage && /^    var _/ { sub(/^    var /, "    @exclusivity(unchecked) var ") }
    { print }
  ' "$file" >"$file.tmp"
  mv "$file.tmp" "$file"
done
# protoc-gen-swift's layout changed if classes are there but nothing was marked.
if grep -q '^  fileprivate class _StorageClass {$' "$out"/*.pb.swift \
  && ! grep -q '^    @exclusivity(unchecked) var _' "$out"/*.pb.swift; then
  echo "generate.sh: found storage classes but no stored property to mark; update the awk above" >&2
  exit 1
fi

# The fingerprint: sha256 of every .proto and every generated file, in name order.
(cd Protos && sha256sum vigil/v1/*.proto) > "$out/FINGERPRINT"
(cd "$out" && sha256sum *.pb.swift) >> "$out/FINGERPRINT"
echo "generated: $(ls "$out"/*.pb.swift | xargs -n1 basename | tr '\n' ' ')"
