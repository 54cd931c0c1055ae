"""A tiny causal LM with random weights and a character tokenizer, built locally (no hub).

For the tests and the demo: ``build(directory)`` writes a 2-layer Llama with a vocabulary
of printable ASCII characters, loadable with ``AutoModelForCausalLM.from_pretrained``;
``build_scorer(directory)`` writes the same network with a one-output score head, a
reward model for ``rlhf`` (``AutoModelForSequenceClassification``). Runs inside the
trainer's runtime (imports transformers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SPECIAL = ("<pad>", "<s>", "</s>", "<unk>")


def build(directory: Path, *, hidden_size: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Write the tiny model and its tokenizer to ``directory`` and return it."""
    import torch
    from transformers import LlamaForCausalLM

    tokenizer, config = _parts(hidden_size, layers)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def build_scorer(
    directory: Path, *, liked: str | None = None, hidden_size: int = 32, seed: int = 0
) -> Path:
    """Write a tiny reward model (one score per sequence) and its tokenizer to ``directory``.

    Without ``liked`` its 2-layer network has random weights. With ``liked`` it has no
    layer at all and its weights are set so that a text scores +1 when its last character
    is one of ``liked`` and -1 otherwise: a reward a policy can learn to earn in a few
    steps, for tests that check rewards rise.
    """
    import torch
    from transformers import LlamaForSequenceClassification

    tokenizer, config = _parts(hidden_size, 2 if liked is None else 0)
    config.num_labels = 1
    torch.manual_seed(seed)
    model = LlamaForSequenceClassification(config)  # type: ignore[no-untyped-call]
    if liked is not None:
        vocab = tokenizer.get_vocab()
        sign = torch.tensor(
            [1.0 if token in liked else -1.0 for token in sorted(vocab, key=vocab.get)]
        )
        with torch.no_grad():  # embedding +-(1, ..., 1); RMS norm keeps it; the head averages
            model.model.embed_tokens.weight.copy_(sign[:, None].expand(-1, hidden_size))
            model.model.norm.weight.fill_(1.0)
            model.score.weight.fill_(1.0 / hidden_size)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def tokenizer() -> Any:
    """The character tokenizer of the tiny models (printable ASCII and newline)."""
    return _parts(32, 1)[0]


def _parts(hidden_size: int, layers: int) -> tuple[Any, Any]:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import LlamaConfig, PreTrainedTokenizerFast

    vocab = {token: index for index, token in enumerate(SPECIAL)}
    for char in [chr(i) for i in range(32, 127)] + ["\n"]:
        vocab.setdefault(char, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    backend.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=backend,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    return tokenizer, config


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m training_agent.trainers.tiny DIRECTORY")
    print(build(Path(sys.argv[1])))
