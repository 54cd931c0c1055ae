"""The checks that run before any model loads: method options, row shapes, helpers."""

from __future__ import annotations

from typing import Any

import pytest

from training_agent.trainers.hf_data import DatasetError
from training_agent.trainers.methods import rows
from training_agent.trainers.methods.options import METHODS, parse_options

CHAT = [{"role": "user", "content": "hi"}]


def test_every_method_reads_its_rows_and_drops_other_columns() -> None:
    pair = {"prompt": "p", "chosen": "c", "rejected": "r", "source": "web"}
    for method in ("dpo", "orpo", "reward"):
        assert rows.check(method, [pair], "d") == [{"prompt": "p", "chosen": "c", "rejected": "r"}]
    implicit: dict[str, Any] = {"chosen": CHAT, "rejected": CHAT}
    assert rows.check("dpo", [implicit], "d") == [implicit]
    assert rows.check("kto", [{"prompt": "p", "completion": "c", "label": "false"}], "d") == [
        {"prompt": "p", "completion": "c", "label": False}
    ]
    assert rows.check("rlhf", [{"prompt": CHAT, "id": 3}], "d") == [{"prompt": CHAT}]
    assert rows.check("cpt", [{"text": "t", "meta": 1}], "d") == [{"text": "t"}]
    sft: list[dict[str, Any]] = [{"messages": CHAT}, {"text": "t"}]
    assert rows.check("sft", sft, "d") == sft


@pytest.mark.parametrize(
    ("method", "data", "message"),
    [
        (
            "kto",
            [{"prompt": "p", "chosen": "c", "rejected": "r"}],
            "method kto needs rows with columns prompt, completion and label (true for a "
            "desirable completion, false otherwise); the dataset d.jsonl has columns "
            "['chosen', 'prompt', 'rejected']",
        ),
        (
            "cpt",
            [{"messages": CHAT}],
            "method cpt needs rows with columns text (or plain .txt files); the dataset "
            "d.jsonl has columns ['messages']",
        ),
        (
            "rlhf",
            [{"prompt": "a"}, {"question": "b"}],
            "method rlhf needs rows with columns prompt; row 2 of the dataset d.jsonl has "
            "columns ['question']",
        ),
        (
            "dpo",
            [{"prompt": "a", "chosen": "b", "rejected": "c"}, {"chosen": "b", "rejected": "c"}],
            "method dpo needs rows with columns prompt, chosen and rejected (prompt may be "
            "left out when chosen and rejected hold the whole conversation); row 2 of the "
            "dataset d.jsonl has columns ['chosen', 'rejected'] (row 1 has prompt, chosen, "
            "rejected)",
        ),
        (
            "dpo",
            [
                {"prompt": "a", "chosen": "b", "rejected": "c"},
                {"prompt": CHAT, "chosen": "b", "rejected": "c"},
            ],
            "row 2 of the dataset d.jsonl has prompt as a messages list where row 1 has a "
            "string; method dpo needs one kind per column",
        ),
        (
            "reward",
            [{"chosen": 1, "rejected": "c"}],
            "method reward reads chosen as a string or a list of chat messages (role, "
            "content), and row 1 of the dataset d.jsonl has int",
        ),
        (
            "kto",
            [{"prompt": "p", "completion": "c", "label": "maybe"}],
            "method kto reads label as true (desirable) or false (undesirable), and row 1 "
            "of the dataset d.jsonl has 'maybe'",
        ),
        (
            "sft",
            [{"text": "a"}, {"question": "b"}],
            "method sft needs rows with columns text, messages, conversations, prompt and "
            "completion, or instruction and output; row 2 of the dataset d.jsonl has "
            "columns ['question']",
        ),
        (
            "kto",
            [{"prompt": CHAT, "completion": "c", "label": True}],
            "method kto reads a row's text columns as all strings or all chat messages "
            "lists, and the dataset d.jsonl has prompt as a messages list, completion as a "
            "string",
        ),
        ("orpo", [], "the dataset d.jsonl has no rows for method orpo"),
    ],
)
def test_rows_that_do_not_fit_say_method_needed_and_found(
    method: str, data: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(DatasetError) as caught:
        rows.check(method, data, "d.jsonl")
    assert str(caught.value) == message


def test_options_default_per_method_and_refuse_bad_values() -> None:
    assert parse_options("dpo", {}).beta == 0.1
    assert parse_options("rlhf", {"reward_model": " rm "}).beta == 0.05
    assert parse_options("rlhf", {"reward_model": "rm"}).reward_model == "rm"
    options = parse_options("kto", {"beta": 0.3, "undesirable_weight": 2, "max_prompt_length": 9})
    assert (options.beta, options.undesirable_weight, options.max_prompt_length) == (0.3, 2.0, 9)
    with pytest.raises(ValueError, match=r"^training.beta must be a number above 0$"):
        parse_options("dpo", {"beta": 0})
    with pytest.raises(ValueError, match="num_generations must be an integer of at least 2"):
        parse_options("rlhf", {"reward_model": "rm", "num_generations": 1})


@pytest.mark.parametrize("training", [{}, {"reward_model": ""}, {"reward_model": 3}])
def test_rlhf_without_a_reward_model_names_the_missing_key(training: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as caught:
        parse_options("rlhf", training)
    assert str(caught.value) == (
        "method rlhf needs a reward model and the config has no training.reward_model: set "
        "it to the directory or hub id of a sequence-classification model (train one with "
        "method reward)"
    )


def test_an_unknown_method_lists_the_known_ones() -> None:
    with pytest.raises(ValueError) as caught:
        parse_options("ppo", {})
    assert str(caught.value) == (
        "training.method 'ppo' is not a method this trainer runs; use one of " + ", ".join(METHODS)
    )
    assert METHODS == ("sft", "cpt", "dpo", "orpo", "kto", "reward", "rlhf")
