#!/usr/bin/env bash
# Builds the libFuzzer target for the PROXY protocol parser, without SwiftPM
# and without touching Package.swift: Sources/ProxyProtocol is compiled as its
# own module (it has no dependencies), instrumented for libFuzzer and ASan,
# and linked with Fuzz/ProxyParserFuzzer.swift.
#
#   Fuzz/build.sh            -> .build-fuzz/proxy-parser-fuzzer
#   Fuzz/build.sh corpus     -> regenerates Fuzz/corpus/ from the test samples
#
# Environment: SWIFTC (default swiftc), FUZZ_BUILD (default .build-fuzz),
# FUZZ_SANITIZERS (default fuzzer,address).
set -euo pipefail
cd "$(dirname "$0")/.."

swiftc=${SWIFTC:-swiftc}
out=${FUZZ_BUILD:-.build-fuzz}
sanitizers=${FUZZ_SANITIZERS:-fuzzer,address}
mkdir -p "$out"

# lld links the sanitizer runtimes without gold's pages of export warnings.
common=(-parse-as-library -O -g -use-ld=lld -swift-version 6)

build_library() {  # $1: output folder, rest: extra flags
    local dir=$1; shift
    mkdir -p "$dir"
    "$swiftc" "${common[@]}" "$@" -whole-module-optimization -module-name ProxyProtocol \
        -emit-module -emit-module-path "$dir/ProxyProtocol.swiftmodule" \
        -emit-library -static -o "$dir/libProxyProtocol.a" Sources/ProxyProtocol/*.swift
}

case ${1:-fuzzer} in
fuzzer)
    build_library "$out/lib" -sanitize="$sanitizers"
    "$swiftc" "${common[@]}" -sanitize="$sanitizers" -I "$out/lib" \
        Fuzz/ProxyParserFuzzer.swift "$out/lib/libProxyProtocol.a" -o "$out/proxy-parser-fuzzer"
    echo "built $out/proxy-parser-fuzzer"
    ;;
corpus)
    # The samples of the parser tests are the seeds: every header form, valid
    # and invalid. Samples.swift and Support.swift import Testing for test
    # descriptions only, so they compile into a plain executable too.
    build_library "$out/plain"
    "$swiftc" "${common[@]}" -I "$out/plain" \
        Fuzz/GenerateCorpus.swift Tests/ProxyProtocolTests/Samples.swift Tests/ProxyProtocolTests/Support.swift \
        "$out/plain/libProxyProtocol.a" -o "$out/generate-corpus"
    rm -rf Fuzz/corpus
    "$out/generate-corpus" Fuzz/corpus
    ;;
*)
    echo "usage: $0 [fuzzer|corpus]" >&2
    exit 2
    ;;
esac
