#!/usr/bin/env bash
# Build llama-cpp-python with CUDA into the current environment (the local-worker image runs this).
# Needs the CUDA toolkit (nvcc) and a C++ compiler. CMAKE_CUDA_ARCHITECTURES defaults to Hopper and Ampere;
# set it to your GPUs' compute capability to build faster (e.g. 90 for H100/H200, 89 for L4/L40S, 80 for A100).
set -euo pipefail
: "${CMAKE_CUDA_ARCHITECTURES:=80;86;89;90}"
export CMAKE_ARGS="-DGGML_CUDA=on -DGGML_NATIVE=off -DCMAKE_CUDA_ARCHITECTURES=${CMAKE_CUDA_ARCHITECTURES} ${CMAKE_ARGS:-}"
export FORCE_CMAKE=1
version=$(grep -m1 -o 'llama-cpp-python>=[0-9.]*' services/local_worker/pyproject.toml | cut -d'=' -f2)
uv pip install --no-cache --reinstall "llama-cpp-python==${version:-0.3.36}"
python -c "import llama_cpp; print('llama.cpp GPU offload supported:', llama_cpp.llama_supports_gpu_offload())"
