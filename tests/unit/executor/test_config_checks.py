"""A TrainingConfig is checked against the owner's policy before its trainer starts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.executor import JOB_TOKEN, RecordingSink, command_job
from training_agent.errors import JobConfigError
from training_agent.executor.config_checks import check_config
from training_agent.executor.runner import JobRunner
from training_agent.job_policy import POLICY_ENV, JobPolicy
from training_agent.jobs import ClaimedJob, JobStatus


def training(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "model": {"name": "meta-llama/Llama-3.2-1B", "trust_remote_code": True},
        "training": {"method": "sft"},
        "dataset_path": "data/train.jsonl",
    }
    return {**config, **overrides}


async def check(config: dict[str, Any], tmp_path: Path, policy: JobPolicy | None = None) -> None:
    job_dir = tmp_path / "jobs" / "job-1"
    job_dir.mkdir(parents=True, exist_ok=True)
    await check_config(
        config, job_dir=job_dir, cache_dir=tmp_path / "cache", policy=policy or JobPolicy()
    )


async def test_hub_ids_and_paths_in_the_work_folder_pass(tmp_path: Path) -> None:
    await check(training(), tmp_path)
    await check(training(training={"checkpoint_resume": "checkpoints/checkpoint-10"}), tmp_path)
    await check(training(dataset_path=str(tmp_path / "cache" / "ab" / "t.jsonl")), tmp_path)


@pytest.mark.parametrize(
    ("config", "named"),
    [
        (training(dataset_path="/etc/passwd"), "dataset_path /etc/passwd"),
        (training(model={"name": "/root/models/x"}), "model.name /root/models/x"),
        (training(tokenizer={"name": "~/tok"}), "tokenizer.name ~/tok"),
        (training(training={"checkpoint_resume": "../job-0/c"}), "checkpoint_resume ../job-0/c"),
        (training(output_dir="/srv/www"), "output_dir /srv/www"),
    ],
)
async def test_a_path_outside_the_allowed_folders_is_one_sentence(
    tmp_path: Path, config: dict[str, Any], named: str
) -> None:
    with pytest.raises(JobConfigError) as refused:
        await check(config, tmp_path)
    message = str(refused.value)
    assert named in message and "data_dirs (TRAINING_AGENT_DATA_DIRS)" in message
    assert "\n" not in message and "exist" not in message


async def test_data_dirs_widen_what_a_job_may_read(tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "llama").mkdir(parents=True)
    config = training(model={"name": str(models / "llama")})
    with pytest.raises(JobConfigError):
        await check(config, tmp_path)
    await check(config, tmp_path, JobPolicy(data_dirs=(str(models),)))


async def test_a_symlink_in_the_work_folder_does_not_lead_out(tmp_path: Path) -> None:
    job_dir = tmp_path / "jobs" / "job-1"
    job_dir.mkdir(parents=True)
    (job_dir / "data").symlink_to("/etc")
    with pytest.raises(JobConfigError, match="dataset_path data/passwd is outside"):
        await check(training(dataset_path="data/passwd"), tmp_path)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("file:///etc/passwd", "not an http(s) URL"),
        ("http://127.0.0.1:8080/train.jsonl", "allow_private_urls"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://localhost/x.jsonl", "allow_private_urls"),
    ],
)
async def test_a_dataset_url_must_be_http_to_a_public_address(
    tmp_path: Path, url: str, why: str
) -> None:
    with pytest.raises(JobConfigError) as refused:
        await check(training(dataset_path=url), tmp_path)
    assert why in str(refused.value)


async def test_allow_private_urls_lets_a_job_reach_the_local_network(tmp_path: Path) -> None:
    config = training(dataset_path="http://127.0.0.1:8080/train.jsonl")
    await check(config, tmp_path, JobPolicy(allow_private_urls=True))
    with pytest.raises(JobConfigError, match="cloud metadata"):
        await check(training(dataset_path="http://169.254.169.254/"), tmp_path,
                    JobPolicy(allow_private_urls=True))  # fmt: skip


async def test_command_and_demo_jobs_are_not_training_configs(tmp_path: Path) -> None:
    await check({"type": "demo", "dataset_path": "/etc/passwd"}, tmp_path)


def runner(tmp_path: Path, config: dict[str, Any], sink: RecordingSink) -> JobRunner:
    return JobRunner(
        job=ClaimedJob(id="job-1", job_token=JOB_TOKEN, config=config),
        jobs_dir=tmp_path / "jobs",
        sink=sink,
        allow_command_jobs=True,
        cancel_grace_s=0.5,
        training_python=sys.executable,
        policy=JobPolicy(data_dirs=("/opt/models",), trusted_model_sources=("my-org/",)),
    )


async def test_a_refused_job_fails_before_its_trainer_starts(tmp_path: Path) -> None:
    sink = RecordingSink()
    outcome = await runner(tmp_path, training(dataset_path="/etc/shadow"), sink).run()
    assert outcome.status is JobStatus.FAILED and outcome.exit_code is None
    assert outcome.reason is not None and outcome.reason.startswith(
        "dataset_path /etc/shadow is outside the folders this agent lets jobs read"
    )
    assert sink.lines == [outcome.reason]
    assert not (tmp_path / "jobs" / "job-1").exists()  # nothing written, nothing run


async def test_the_trainer_gets_the_owners_policy_and_a_job_cannot_change_it(
    tmp_path: Path,
) -> None:
    sink = RecordingSink()
    forged = JobPolicy(allow_remote_code=True).to_env()
    job = command_job("print-env", env={POLICY_ENV: forged})
    outcome = await runner(tmp_path, job, sink).run()
    assert outcome.status is JobStatus.FAILED and "TRAINING_AGENT_" in str(outcome.reason)

    outcome = await runner(tmp_path, command_job("print-env"), sink).run()
    assert outcome.status is JobStatus.COMPLETED
    given = next(line for line in sink.lines if line.startswith(f"{POLICY_ENV}="))
    policy = JobPolicy.from_env({POLICY_ENV: given.split("=", 1)[1]})
    assert policy == JobPolicy(data_dirs=("/opt/models",), trusted_model_sources=("my-org/",))
    assert json.loads(given.split("=", 1)[1])["allow_remote_code"] is False
