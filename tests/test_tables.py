import pyarrow as pa
import pytest

from lmforecast import tables

REQUIRED = {
    "runs": ["run", "n_params", "n_params_nonembed", "objective", "mixture", "seed", "lr", "tokens_planned"],
    "checkpoints": ["run", "step", "tokens", "flops", "train_loss"],
    "domain_losses": ["run", "step", "domain", "loss", "bits_per_byte", "tokens"],
    "task_scores": ["run", "step", "task", "prompt", "shots", "metric", "value", "n"],
    "example_scores": ["run", "step", "task", "prompt", "shots", "example", "correct", "logprob_correct", "prob_correct_norm"],
    "sft_scores": ["run", "step", "task", "sft_method", "sft_data", "metric", "value", "n"],
}


def test_schemas_hold_the_required_columns_of_the_design():
    for name, columns in REQUIRED.items():
        assert set(columns) <= set(tables.SCHEMAS[name].names), name
    assert tables.SCHEMAS["checkpoints"].field("step").type == pa.int64()
    assert tables.SCHEMAS["domain_losses"].field("loss").type == pa.float64()


def test_missing_column_is_named():
    with pytest.raises(ValueError, match=r"sft_scores: missing columns \['n'\]"):
        tables.to_table(
            "sft_scores",
            {
                "run": ["r"],
                "step": [1],
                "task": ["t"],
                "sft_method": ["full"],
                "sft_data": ["single"],
                "metric": ["acc"],
                "value": [0.5],
            },
        )


def test_write_read_round_trip_leaves_no_temporary_file(tmp_path):
    cols = {
        "run": ["r"],
        "step": [4],
        "task": ["t"],
        "sft_method": ["full"],
        "sft_data": ["single"],
        "metric": ["acc"],
        "value": [0.5],
        "n": [10],
    }
    path = tmp_path / "sft_scores.parquet"
    tables.write(tables.to_table("sft_scores", cols), path)
    # no temporary left; the checksum beside the table, in sha256sum's format
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sft_scores.parquet", "sft_scores.parquet.sha256"]
    assert (tmp_path / "sft_scores.parquet.sha256").read_text() == f"{tables.sha256(path)}  sft_scores.parquet\n"
    assert tables.read("sft_scores", path).to_pydict() == cols


def test_read_rejects_wrong_types(tmp_path):
    path = tmp_path / "bad.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"run": ["r"], "step": ["four"]}), path)
    tables.checksum_path(path).write_text(tables.sha256(path))  # intact: the schema is what is wrong
    with pytest.raises(ValueError, match=r"bad.parquet: columns \['step', 'tokens'"):
        tables.read("checkpoints", path)


def test_first_prompt_picks_each_tasks_first_or_the_named_ones():
    import polars as pl

    scores = pl.DataFrame({"task": ["a", "a", "b", "b", "c"], "prompt": ["p1", "p2", "q2", "q1", "r1"], "value": [1, 2, 3, 4, 5]})
    assert tables.first_prompt(scores)["value"].to_list() == [1, 3, 5]  # first in the table, not by name
    assert tables.first_prompt(scores, "p2")["value"].to_list() == [2]
    assert tables.first_prompt(scores, {"b": "q1"})["value"].to_list() == [1, 4, 5]  # the others: their first


def test_training_loss_has_one_row_per_step_of_a_trained_run(tiny_checkpoints):
    """Rule aggregate's training_loss: the checkpoints' loss histories (steps 1-3, 4-8, then 9-12 in the
    resumed segment) as one row per step, each the step's loss as the trainer kept it."""
    from lmforecast.io import read_json
    from lmforecast.measure.aggregate import training_loss_table

    table = training_loss_table(tiny_checkpoints)
    assert table.schema == tables.SCHEMAS["training_loss"]
    assert table["run"].to_pylist() == ["tiny"] * 12 and table["step"].to_pylist() == list(range(1, 13))
    kept = [loss for d in tiny_checkpoints for loss in read_json(d / "trainer_state.json")["loss_history"]["loss"]]
    assert table["loss"].to_pylist() == kept and all(0 < x < 10 for x in kept)
    # the last 20 (here all 4) steps' mean is the checkpoint's train_loss
    assert sum(kept[8:]) / 4 == pytest.approx(read_json(tiny_checkpoints[-1] / "trainer_state.json")["train_loss"])
    with pytest.raises(ValueError, match=r"run 'tiny': loss histories lack steps 4\.\.8; expected every checkpoint"):
        training_loss_table([tiny_checkpoints[0], tiny_checkpoints[2]])
    with pytest.raises(ValueError, match=r"run 'tiny' step 1: in the loss histories of both .*step3 and .*step3"):
        training_loss_table([tiny_checkpoints[0], tiny_checkpoints[0]])
