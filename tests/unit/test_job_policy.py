"""The owner's policy for job configs: local paths, trusted sources, the trainer's copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from training_agent.config import load_settings
from training_agent.errors import ConfigError
from training_agent.job_policy import (
    POLICY_ENV,
    JobPolicy,
    PolicyError,
    config_paths,
    is_local,
)


def test_settings_become_the_policy_the_trainer_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINING_AGENT_DATA_DIRS", "/data/sets:/models")
    monkeypatch.setenv("TRAINING_AGENT_TRUSTED_MODEL_SOURCES", "my-org/, other/model")
    monkeypatch.setenv("TRAINING_AGENT_ALLOW_PRIVATE_URLS", "1")
    monkeypatch.setenv("TRAINING_AGENT_MAX_DATASET_DOWNLOAD_GB", "2.5")
    policy = load_settings(config_file=None).job_policy()

    assert JobPolicy.from_env({POLICY_ENV: policy.to_env()}) == policy
    assert policy.data_dirs == ("/data/sets", "/models")
    assert policy.trusted_model_sources == ("my-org/", "other/model")
    assert policy.allow_private_urls and not policy.allow_remote_code
    assert policy.max_download_bytes == 2_500_000_000


def test_defaults_are_the_strictest() -> None:
    defaults = load_settings(config_file=None).job_policy()
    assert defaults == JobPolicy() == JobPolicy.from_env({})
    assert JobPolicy.from_env({POLICY_ENV: "not json"}) == JobPolicy()
    assert not defaults.trusts("meta-llama/Llama-3-8B") and not defaults.allow_private_urls
    assert defaults.max_download_bytes == 50 * 10**9


def test_data_dirs_must_be_absolute(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAINING_AGENT_DATA_DIRS", "relative/dir")
    with pytest.raises(ConfigError, match=r"data_dirs.*must be absolute"):
        load_settings(config_file=None)


def test_trusted_sources_are_ids_or_prefixes() -> None:
    policy = JobPolicy(trusted_model_sources=("my-org/", "other/model"))
    assert policy.trusts("my-org/anything") and policy.trusts("other/model")
    assert not policy.trusts("other/model-2") and not policy.trusts("my-org-evil/x")
    assert JobPolicy(allow_remote_code=True).trusts("anyone/anything")


def test_hub_ids_are_not_paths_but_folders_are(tmp_path: Path) -> None:
    (tmp_path / "local-model").mkdir()
    assert not is_local("meta-llama/Llama-3-8B", tmp_path)
    assert not is_local("gpt2", tmp_path)
    for name in ("/models/x", "./x", "../x", "~/x", "a/b/c", "C:\\models", "local-model"):
        assert is_local(name, tmp_path), name


def roots(tmp_path: Path, policy: JobPolicy) -> tuple[Path, list[Path]]:
    job_dir = tmp_path / "jobs" / "job-1"
    job_dir.mkdir(parents=True)
    return job_dir, policy.roots(job_dir, tmp_path / "cache")


def test_paths_inside_the_work_folder_cache_and_data_dirs_pass(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    policy = JobPolicy(data_dirs=(str(tmp_path / "data"),))
    job_dir, allowed = roots(tmp_path, policy)
    for value in ("checkpoints/c-1", str(tmp_path / "cache" / "x.jsonl"), str(tmp_path / "data")):
        policy.check_path("dataset_path", value, base=job_dir, roots=allowed)


@pytest.mark.parametrize("exists", [True, False])
def test_a_path_outside_is_refused_with_the_same_sentence_whether_it_exists(
    tmp_path: Path, exists: bool
) -> None:
    policy = JobPolicy()
    job_dir, allowed = roots(tmp_path, policy)
    target = tmp_path / "private" / "secret.jsonl"
    if exists:
        target.parent.mkdir()
        target.write_text("the secret\n")
    for value in (str(target), "../../private/secret.jsonl"):
        with pytest.raises(PolicyError) as refused:
            policy.check_path("dataset_path", value, base=job_dir, roots=allowed)
        assert str(refused.value) == (
            f"dataset_path {value} is outside the folders this agent lets jobs read (the "
            "job's work folder, the dataset cache and data_dirs); the machine's owner can "
            "add its folder to data_dirs (TRAINING_AGENT_DATA_DIRS) to allow it"
        )


def test_a_symlink_out_of_an_allowed_folder_is_followed_and_refused(tmp_path: Path) -> None:
    policy = JobPolicy()
    job_dir, allowed = roots(tmp_path, policy)
    (tmp_path / "outside").mkdir()
    (job_dir / "innocent").symlink_to(tmp_path / "outside")
    (job_dir / "file.jsonl").symlink_to(tmp_path / "outside" / "data.jsonl")
    for value in ("innocent", "innocent/data.jsonl", "file.jsonl", str(job_dir / "innocent")):
        with pytest.raises(PolicyError, match="outside the folders"):
            policy.check_path("model.name", value, base=job_dir, roots=allowed)


def test_every_path_of_a_training_config_is_found(tmp_path: Path) -> None:
    config = {
        "model": {"name": "/models/llama"},
        "tokenizer": {"name": "meta-llama/Llama-3-8B"},  # a hub id: not a path
        "dataset_path": "https://data.example.com/train.jsonl",  # a URL: not a path
        "training": {
            "checkpoint_resume": "../job-0/checkpoints",
            "output_dir": "/srv/out",
            "reward_model": "/home/someone/reward",
        },
        "output_dir": "out",
    }
    assert list(config_paths(config, tmp_path)) == [
        ("model.name", "/models/llama"),
        ("training.reward_model", "/home/someone/reward"),
        ("training.checkpoint_resume", "../job-0/checkpoints"),
        ("training.output_dir", "/srv/out"),
        ("output_dir", "out"),
    ]
    assert list(config_paths({"dataset_path": "/etc/shadow"}, tmp_path)) == [
        ("dataset_path", "/etc/shadow")
    ]
