"""Where training is and how it is saved (`cliplit.training.state`), in-process through a real
`accelerate.Accelerator` on the CPU with a tiny module: the save/load round trip of the progress, the
snapshots, the model, the optimizer and the random state; finding and pruning checkpoints; damaged
checkpoints refused in one line; the resumable batch streams (`cliplit.training.data.BatchStreams`)."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT

from cliplit.errors import DataError
from cliplit.training.data import STREAM_NAMES, BatchStreams
from cliplit.training.schedule import ENHANCE
from cliplit.training.state import (
    STATE_JSON,
    STATE_TENSORS,
    Progress,
    Snapshots,
    checkpoint_folder,
    find_checkpoint,
    load_training_state,
    prune_checkpoints,
    save_checkpoint,
    save_training_state,
)

pytest.importorskip("accelerate", reason="accelerate is in the training extra")

PROJECTION_DIM, PROMPT_SIZE, NUM_BACKLIT = 16, 4, 3


@pytest.fixture
def accelerator():
    """A one-process CPU Accelerator; accelerate's process-wide state is reset afterwards."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    yield Accelerator(cpu=True)
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture
def trained(accelerator):
    """A tiny module and its Adam optimizer, prepared, after one step (so the optimizer has state)."""
    torch.manual_seed(0)
    module = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.1)
    module, optimizer = accelerator.prepare(module, optimizer)
    train_step(module, optimizer)
    return module, optimizer


def train_step(module, optimizer) -> None:
    module(torch.randn(5, 3)).square().mean().backward()
    optimizer.step()
    optimizer.zero_grad()


def parameters(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def mid_run_state(module) -> tuple[Progress, Snapshots]:
    """A run in its second round's enhancement phase: every field away from its default."""
    generator = torch.Generator().manual_seed(3)
    progress = Progress(stage=ENHANCE, round=1, global_step=12, phase_step=4,
                        stream_items={name: 8 * (i + 1) for i, name in enumerate(STREAM_NAMES)},
                        losses_since_check=[0.5, 0.25], best_value=0.375, num_results=2, rave_threshold=0.125,
                        phase_extension=60, last_loss=0.5)
    snapshots = Snapshots(best_model=parameters(module), best_guidance=torch.randn(2, PROJECTION_DIM, generator=generator),
                          results=[torch.randint(0, 256, (NUM_BACKLIT, 3, PROMPT_SIZE, PROMPT_SIZE), dtype=torch.uint8,
                                                 generator=generator) for _ in range(2)],
                          rave_residual=torch.randn(PROJECTION_DIM, generator=generator))
    return progress, snapshots


def test_save_and_load_restore_progress_snapshots_model_optimizer_and_random_state(accelerator, trained, tmp_path):
    module, optimizer = trained
    progress, snapshots = mid_run_state(module)
    folder = checkpoint_folder(tmp_path, progress.global_step)
    save_training_state(accelerator, folder, progress, snapshots)
    assert folder.name == "checkpoint-12" and (folder / STATE_JSON).is_file() and (folder / STATE_TENSORS).is_file()
    saved_parameters, saved_moments = parameters(module), optimizer.state_dict()["state"][0]["exp_avg"].clone()
    next_draw = torch.rand(4)  # the draw right after the save

    train_step(module, optimizer)  # the run goes on, then is interrupted
    assert any(not torch.equal(parameters(module)[k], saved_parameters[k]) for k in saved_parameters)

    loaded_progress, loaded_snapshots = load_training_state(accelerator, folder)
    assert loaded_progress == progress
    assert loaded_snapshots.best_model.keys() == snapshots.best_model.keys()
    for key, value in snapshots.best_model.items():
        assert torch.equal(loaded_snapshots.best_model[key], value)
    assert torch.equal(loaded_snapshots.best_guidance, snapshots.best_guidance)
    assert torch.equal(loaded_snapshots.rave_residual, snapshots.rave_residual)
    assert len(loaded_snapshots.results) == 2
    assert all(torch.equal(a, b) and a.dtype == torch.uint8 for a, b in zip(loaded_snapshots.results, snapshots.results))
    for key, value in saved_parameters.items():
        assert torch.equal(parameters(module)[key], value), key
    assert torch.equal(optimizer.state_dict()["state"][0]["exp_avg"], saved_moments)
    assert torch.equal(torch.rand(4), next_draw)  # accelerate restored the random state


def test_an_empty_snapshot_round_trips_as_empty(accelerator, trained, tmp_path):
    progress = Progress(stage="prompt_init", global_step=4, last_loss=math.inf)
    folder = checkpoint_folder(tmp_path, 4)
    save_training_state(accelerator, folder, progress, Snapshots())
    loaded_progress, snapshots = load_training_state(accelerator, folder)
    assert loaded_progress == progress and loaded_progress.stream_items == {name: 0 for name in STREAM_NAMES}
    assert snapshots == Snapshots()


def make_checkpoints(output_dir: Path, steps: list[int]) -> None:
    for step in steps:
        checkpoint_folder(output_dir, step).mkdir(parents=True)


def test_find_checkpoint_latest_is_the_largest_step_and_a_name_or_path_is_taken_as_given(tmp_path):
    assert find_checkpoint(tmp_path, "latest") is None  # nothing to resume: a new run
    make_checkpoints(tmp_path, [2, 10, 9])
    (tmp_path / "checkpoint-old").mkdir()  # not a step: ignored
    (tmp_path / "checkpoint-11").write_text("a file, not a checkpoint folder")
    assert find_checkpoint(tmp_path, "latest") == tmp_path / "checkpoint-10"  # by number, not by name
    assert find_checkpoint(tmp_path, "checkpoint-2") == tmp_path / "checkpoint-2"  # a name inside --output_dir
    elsewhere = tmp_path / "elsewhere" / "checkpoint-5"
    elsewhere.mkdir(parents=True)
    assert find_checkpoint(tmp_path, str(elsewhere)) == elsewhere
    with pytest.raises(DataError) as error:
        find_checkpoint(tmp_path, "checkpoint-7")
    assert str(error.value) == "checkpoint-7: checkpoint folder not found"


def test_prune_checkpoints_makes_room_for_one_more_within_the_limit(tmp_path):
    make_checkpoints(tmp_path, [4, 8, 12, 16])
    prune_checkpoints(tmp_path, None)
    assert len(list(tmp_path.iterdir())) == 4  # no limit: all kept
    prune_checkpoints(tmp_path, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-12", "checkpoint-16"]
    prune_checkpoints(tmp_path, 1)
    assert list(tmp_path.iterdir()) == []


def test_saving_checkpoints_with_a_limit_keeps_the_newest(accelerator, trained, tmp_path):
    module, optimizer = trained
    for step in (4, 8, 12):
        train_step(module, optimizer)
        folder = save_checkpoint(accelerator, tmp_path, 2, Progress(stage=ENHANCE, global_step=step), Snapshots())
        assert folder == tmp_path / f"checkpoint-{step}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-12", "checkpoint-8"]
    progress, _ = load_training_state(accelerator, find_checkpoint(tmp_path, "latest"))
    assert progress.global_step == 12


def test_a_folder_that_is_not_a_checkpoint_is_refused_in_one_line(accelerator, tmp_path):
    folder = tmp_path / "checkpoint-3"
    folder.mkdir()
    with pytest.raises(DataError) as error:
        load_training_state(accelerator, folder)
    assert str(error.value) == f"{folder}: not a CLIP-LIT training checkpoint (no {STATE_JSON})"


@pytest.mark.parametrize("damage", ["state tensors truncated", "progress not JSON", "model weights garbage"])
def test_a_damaged_checkpoint_is_refused_in_one_line(accelerator, trained, tmp_path, damage):
    module, _ = trained
    folder = checkpoint_folder(tmp_path, 12)
    save_training_state(accelerator, folder, *mid_run_state(module))
    if damage == "state tensors truncated":
        tensors = folder / STATE_TENSORS
        tensors.write_bytes(tensors.read_bytes()[:100])
    elif damage == "progress not JSON":
        (folder / STATE_JSON).write_text('{"stage": "enhance", ')
    else:
        (folder / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(DataError) as error:
        load_training_state(accelerator, folder)
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message
    assert message.startswith(f"{folder}: damaged training checkpoint, cannot resume from it (")
    assert message.endswith("pass another --resume_from_checkpoint, or none")


class Numbered(torch.utils.data.Dataset):
    """Item i -> (uint8 (3, 2, 2) filled with i, i): the batches show which items were drawn."""

    def __init__(self, length: int):
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        return torch.full((3, 2, 2), index, dtype=torch.uint8), index


def streams(accelerator, positions: dict[str, int], batch_size: int) -> BatchStreams:
    datasets = {name: Numbered(7) for name in STREAM_NAMES}
    return BatchStreams(datasets, {name: batch_size for name in STREAM_NAMES}, positions, accelerator, seed=5, num_workers=0)


def test_batch_streams_resume_from_their_saved_positions(accelerator):
    positions = {name: 0 for name in STREAM_NAMES}
    running = streams(accelerator, positions, batch_size=3)
    first_pixels, first_indices = running.next("backlit_enhance")
    assert first_pixels.shape == (3, 3, 2, 2) and first_pixels.dtype == torch.float32
    assert torch.equal(torch.round(first_pixels[:, 0, 0, 0] * 255), first_indices.float())  # uint8 / 255 on the device
    saved = dict(positions)
    assert saved == {"backlit_prompt": 0, "welllit_prompt": 0, "backlit_enhance": 3}  # advanced in place
    following = [running.next("backlit_enhance")[1].tolist() for _ in range(3)]
    assert sorted(first_indices.tolist() + following[0] + following[1][:1]) == list(range(7))  # an epoch is a permutation

    resumed = streams(accelerator, saved, batch_size=3)
    assert [resumed.next("backlit_enhance")[1].tolist() for _ in range(3)] == following
    # another stream of the same data is another order
    assert running.next("backlit_prompt")[1].tolist() != first_indices.tolist()


def test_a_new_batch_size_continues_the_stream_where_it_is(accelerator):
    whole = streams(accelerator, {name: 0 for name in STREAM_NAMES}, batch_size=2)
    order = [i for _ in range(4) for i in whole.next("welllit_prompt")[1].tolist()]
    positions = {name: 0 for name in STREAM_NAMES}
    changing = streams(accelerator, positions, batch_size=2)
    drawn = changing.next("welllit_prompt")[1].tolist()
    changing.per_process["welllit_prompt"] = 4  # as the prompt stages switch between half and full batches
    drawn += changing.next("welllit_prompt")[1].tolist()
    assert drawn == order[:6] and positions["welllit_prompt"] == 6


TRAINING_PACKAGE = REPO_ROOT / "cliplit" / "training"


@pytest.mark.parametrize("module", ["state.py", "schedule.py", "data.py"])
def test_the_state_modules_import_no_accelerate_when_loaded(module):
    """accelerate is the script's: the package's state code takes its Accelerator as an argument."""
    tree = ast.parse((TRAINING_PACKAGE / module).read_text())
    top_level = [alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names]
    top_level += [node.module or "" for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert not [name for name in top_level if name.split(".")[0] == "accelerate"]
    if module == "schedule.py":  # the schedule is plain Python
        assert not [name for name in top_level if name.split(".")[0] in ("torch", "numpy", "safetensors")]
