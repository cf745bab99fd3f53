"""A tiny llama-architecture GGUF model, generated at test time: random weights, a byte-level vocabulary.

llama.cpp loads it, tokenizes any text (every byte has its own token: SentencePiece byte fallback), generates
tokens (gibberish: the weights are random) and computes embeddings. It is a few hundred kilobytes and takes
milliseconds to write, so no model is ever downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import numpy.typing as npt

N_EMBD = 64
N_LAYER = 2
N_HEAD = 4
N_FF = 128
N_CTX = 256
HEAD_DIM = N_EMBD // N_HEAD

UNK_ID, BOS_ID, EOS_ID = 0, 1, 2
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>")
N_VOCAB = len(SPECIAL_TOKENS) + 256

# Used by llama-cpp-python's Jinja2 chat formatter (and llama.cpp's own template engine) for chat completions.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def vocabulary() -> tuple[list[str], list[float], list[int]]:
    tokens = [*SPECIAL_TOKENS, *(f"<0x{byte:02X}>" for byte in range(256))]
    scores = [0.0] * N_VOCAB
    types = [int(gguf.TokenType.UNKNOWN), int(gguf.TokenType.CONTROL), int(gguf.TokenType.CONTROL)]
    types += [int(gguf.TokenType.BYTE)] * 256
    return tokens, scores, types


def tensor_name(tensor: gguf.MODEL_TENSOR, layer: int | None = None) -> str:
    name = gguf.TENSOR_NAMES[tensor]
    return (name.format(bid=layer) if layer is not None else name) + ".weight"


def _tensors(seed: int) -> dict[str, npt.NDArray[np.float32]]:
    """Numpy shapes are (rows, columns): GGUF stores them reversed, as llama.cpp's ``ne`` expects."""
    rng = np.random.default_rng(seed)

    def random(*shape: int) -> npt.NDArray[np.float32]:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    def ones(size: int) -> npt.NDArray[np.float32]:
        return np.ones(size, dtype=np.float32)

    tensor = gguf.MODEL_TENSOR
    tensors = {
        tensor_name(tensor.TOKEN_EMBD): random(N_VOCAB, N_EMBD),
        tensor_name(tensor.OUTPUT_NORM): ones(N_EMBD),
        tensor_name(tensor.OUTPUT): random(N_VOCAB, N_EMBD),
    }
    for layer in range(N_LAYER):
        tensors |= layer_tensors(
            layer, n_embd=N_EMBD, n_head=N_HEAD, head_dim=HEAD_DIM, n_ff=N_FF, random=random, ones=ones
        )
    return tensors


def layer_tensors(
    layer: int,
    *,
    n_embd: int,
    n_head: int,
    head_dim: int,
    n_ff: int,
    random: Callable[..., Any],
    ones: Callable[[int], Any],
) -> dict[str, Any]:
    """One llama block's tensors (attention and feed-forward), drawn with ``random`` in a fixed order."""
    tensor = gguf.MODEL_TENSOR
    return {
        tensor_name(tensor.ATTN_NORM, layer): ones(n_embd),
        tensor_name(tensor.ATTN_Q, layer): random(n_head * head_dim, n_embd),
        tensor_name(tensor.ATTN_K, layer): random(n_head * head_dim, n_embd),
        tensor_name(tensor.ATTN_V, layer): random(n_head * head_dim, n_embd),
        tensor_name(tensor.ATTN_OUT, layer): random(n_embd, n_head * head_dim),
        tensor_name(tensor.FFN_NORM, layer): ones(n_embd),
        tensor_name(tensor.FFN_GATE, layer): random(n_ff, n_embd),
        tensor_name(tensor.FFN_UP, layer): random(n_ff, n_embd),
        tensor_name(tensor.FFN_DOWN, layer): random(n_embd, n_ff),
    }


def add_byte_tokenizer(writer: gguf.GGUFWriter) -> None:
    """The byte-level vocabulary, its special tokens and the chat template, as llama.cpp reads them."""
    tokens, scores, types = vocabulary()
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_unk_token_id(UNK_ID)
    writer.add_bos_token_id(BOS_ID)
    writer.add_eos_token_id(EOS_ID)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)


def write_llama_gguf(
    path: Path,
    tensors: dict[str, Any],
    *,
    name: str,
    file_type: gguf.LlamaFileType,
    n_ctx: int,
    n_embd: int,
    n_layer: int,
    n_ff: int,
    n_head: int,
    pooling: gguf.PoolingType | None = None,
) -> None:
    """Write a llama-architecture GGUF with the byte-level tokenizer: its hyperparameters, then ``tensors``."""
    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_name(name)
    writer.add_file_type(file_type)
    writer.add_vocab_size(N_VOCAB)
    writer.add_context_length(n_ctx)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    if pooling is not None:
        writer.add_pooling_type(pooling)
    add_byte_tokenizer(writer)
    for tensor_name, data in tensors.items():
        writer.add_tensor(tensor_name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_tiny_llama_gguf(path: Path, *, seed: int = 0) -> Path:
    """Write the tiny model to ``path`` (same ``seed``, same file) and return ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_llama_gguf(
        path,
        _tensors(seed),
        name="bodhi-tiny-llama",
        file_type=gguf.LlamaFileType.ALL_F32,
        n_ctx=N_CTX,
        n_embd=N_EMBD,
        n_layer=N_LAYER,
        n_ff=N_FF,
        n_head=N_HEAD,
        pooling=gguf.PoolingType.MEAN,  # one vector per input from /v1/embeddings
    )
    return path
