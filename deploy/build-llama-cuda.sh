#!/usr/bin/env bash
# Build llama-cpp-python with CUDA into the current environment (the local-worker image runs this).
# Needs the CUDA toolkit (nvcc), CMake and a C++ compiler. Run from the repository root.
#
#   CMAKE_CUDA_ARCHITECTURES  the GPUs' compute capabilities (default Ampere to Hopper: 80;86;89;90); name only
#                             yours to build faster, e.g. 90 for H100/H200, 89 for L4/L40S, 80 for A100
#   LLAMA_CPP_PYTHON_SOURCE   what to build: default the version uv.lock pins, from the package index; or a path to
#                             its source (an unpacked sdist) for machines without the index
#   PIP                       the install command (default `uv pip install --reinstall --no-cache`; with pip:
#                             `python3 -m pip install --force-reinstall --no-cache-dir`)
#   CMAKE_ARGS                more CMake options, added after these
#   LLAMA_IMPORT_CHECK        1 (default): import llama_cpp afterwards and say whether it offloads to a GPU; 0 where
#                             no GPU driver is present (an image build: libllama needs the driver's libcuda.so.1)
set -euo pipefail
: "${CMAKE_CUDA_ARCHITECTURES:=80;86;89;90}"
: "${PIP:=uv pip install --reinstall --no-cache}"
if [ -z "${LLAMA_CPP_PYTHON_SOURCE:-}" ]; then
    version=$(awk '/^name = "llama-cpp-python"$/ { getline; gsub(/"/, "", $3); print $3; exit }' uv.lock)
    [ -n "$version" ] || { echo "llama-cpp-python is not pinned in uv.lock" >&2; exit 1; }
    LLAMA_CPP_PYTHON_SOURCE="llama-cpp-python==${version}"
fi
# LLAVA_BUILD=off: the worker loads no multimodal projectors, and mtmd is a large part of the build.
export CMAKE_ARGS="-DGGML_CUDA=on -DGGML_NATIVE=off -DLLAVA_BUILD=off -DCMAKE_CUDA_ARCHITECTURES=${CMAKE_CUDA_ARCHITECTURES} ${CMAKE_ARGS:-}"
export FORCE_CMAKE=1
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
echo "building ${LLAMA_CPP_PYTHON_SOURCE} with CMAKE_ARGS=${CMAKE_ARGS}"
# shellcheck disable=SC2086  # PIP is a command with its arguments
$PIP "${LLAMA_CPP_PYTHON_SOURCE}"
if [ "${LLAMA_IMPORT_CHECK:-1}" != 0 ]; then
    python3 -c "import llama_cpp; print('llama.cpp GPU offload supported:', llama_cpp.llama_supports_gpu_offload())"
fi
