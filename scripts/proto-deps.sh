#!/usr/bin/env bash
# Fetches the protos that proto/flock/v1 imports into .proto-deps/ (git-ignored),
# from registries this environment reaches instead of the Buf Schema Registry:
#   buf/validate/validate.proto  from the Go module github.com/bufbuild/protovalidate
#   google/api/*.proto           from the npm package google-proto-files (tools/codegen)
set -euo pipefail
cd "$(dirname "$0")/.."

PROTOVALIDATE_VERSION=v1.2.2
out=.proto-deps
rm -rf "$out"
mkdir -p "$out/buf/validate" "$out/google/api"

dir=$(GOFLAGS=-mod=mod go mod download -json "github.com/bufbuild/protovalidate@${PROTOVALIDATE_VERSION}" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] || { echo "proto-deps: could not download github.com/bufbuild/protovalidate@${PROTOVALIDATE_VERSION}" >&2; exit 1; }
cp "$dir/proto/protovalidate/buf/validate/validate.proto" "$out/buf/validate/"

gapi=tools/codegen/node_modules/google-proto-files/google/api
[ -d "$gapi" ] || { echo "proto-deps: run 'npm ci --prefix tools/codegen' first" >&2; exit 1; }
cp "$gapi/annotations.proto" "$gapi/http.proto" "$gapi/httpbody.proto" "$out/google/api/"
chmod -R u+w "$out"
