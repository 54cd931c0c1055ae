"""Which declared outputs are uploaded: by the job's mode, by place, by kind and by size."""

from __future__ import annotations

from pathlib import Path

from training_agent.executor.outputs import artifact_name, plan_uploads, upload_mode
from training_agent.jobs import JobOutput, OutputKind


def work_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "jobs" / "job-1"
    (folder / "final_adapter").mkdir(parents=True)
    (folder / "final_adapter" / "adapter.bin").write_bytes(b"w" * 100)
    (folder / "checkpoints" / "checkpoint-10").mkdir(parents=True)
    (folder / "model.json").write_text("{}")
    return folder


def declared(folder: Path) -> list[JobOutput]:
    return [
        JobOutput(str(folder / "checkpoints" / "checkpoint-10"), OutputKind.CHECKPOINT),
        JobOutput(str(folder / "final_adapter"), OutputKind.ADAPTER),
        JobOutput(str(folder / "model.json"), OutputKind.FILE, name="weights export"),
    ]


def test_final_uploads_everything_but_checkpoints(tmp_path: Path) -> None:
    folder = work_dir(tmp_path)

    plan = plan_uploads(declared(folder), config={}, work_dir=folder, max_bytes=None)

    assert [(u.index, u.name, u.kind, u.is_dir) for u in plan.uploads] == [
        (1, "final_adapter.tar", OutputKind.ADAPTER, True),
        (2, "weights_export", OutputKind.FILE, False),
    ]
    assert plan.notes == []


def test_all_adds_checkpoints_and_none_uploads_nothing(tmp_path: Path) -> None:
    folder = work_dir(tmp_path)
    every = plan_uploads(
        declared(folder), config={"outputs": {"upload": "all"}}, work_dir=folder, max_bytes=None
    )
    nothing = plan_uploads(
        declared(folder), config={"outputs": {"upload": "none"}}, work_dir=folder, max_bytes=None
    )

    assert [u.index for u in every.uploads] == [0, 1, 2]
    assert nothing.uploads == [] and nothing.notes == []


def test_an_unknown_mode_says_so_and_uploads_the_final_outputs(tmp_path: Path) -> None:
    mode, note = upload_mode({"outputs": {"upload": "everything"}})

    assert mode.value == "final"
    assert note is not None and "'everything'" in note and '"final", "all", "none"' in note


def test_a_path_outside_the_work_dir_is_refused_without_saying_whether_it_exists(
    tmp_path: Path,
) -> None:
    folder = work_dir(tmp_path)
    (tmp_path / "id_rsa").write_text("secret")
    (folder / "escape").symlink_to(tmp_path / "id_rsa")
    outputs = [
        JobOutput(str(tmp_path / "id_rsa")),
        JobOutput(str(tmp_path / "missing")),
        JobOutput(str(folder / "escape")),
        JobOutput(str(folder / ".." / "id_rsa")),
    ]

    plan = plan_uploads(outputs, config={}, work_dir=folder, max_bytes=None)

    assert plan.uploads == []
    assert len(plan.notes) == 4
    assert all("outside the job's work directory" in note for note in plan.notes)
    assert not any("no file" in note for note in plan.notes)


def test_a_missing_output_and_one_too_big_are_noted(tmp_path: Path) -> None:
    folder = work_dir(tmp_path)
    outputs = [JobOutput(str(folder / "gone.bin")), JobOutput(str(folder / "final_adapter"))]

    plan = plan_uploads(outputs, config={}, work_dir=folder, max_bytes=50)

    assert plan.uploads == []
    assert "there is no file or directory there" in plan.notes[0]
    assert "max_artifact_gb" in plan.notes[1] and str(folder / "final_adapter") in plan.notes[1]


def test_names_are_safe_and_unique(tmp_path: Path) -> None:
    folder = work_dir(tmp_path)
    (folder / "a").mkdir()
    (folder / "b").mkdir()
    outputs = [
        JobOutput(str(folder / "a"), name="model"),
        JobOutput(str(folder / "b"), name="model"),
    ]

    plan = plan_uploads(outputs, config={}, work_dir=folder, max_bytes=None)

    assert [u.name for u in plan.uploads] == ["model.tar", "model-2.tar"]
    assert artifact_name("../../etc/passwd", is_dir=False) == "etc_passwd"
