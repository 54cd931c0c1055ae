"""`training-agent demo` with the train extra: the config and the shipped chat dataset."""

from __future__ import annotations

from pathlib import Path

from training_agent.commands.demo import CHAT_DATASET, hf_available, hf_demo_config
from training_agent.trainers import hf_config, hf_data


def test_the_demo_uses_the_hf_trainer_when_the_train_extra_is_installed() -> None:
    assert hf_available()  # the suite installs the train extra
    settings, ignored = hf_config.parse(hf_demo_config(Path("/m")))
    assert ignored == [] and settings.dataset_path == str(CHAT_DATASET)


def test_the_shipped_chat_dataset_is_chat_rows() -> None:
    rows = hf_data.load_rows([CHAT_DATASET])
    assert len(rows) == 96 and hf_data.row_shape(rows) == "messages"
