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
