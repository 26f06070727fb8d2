"""Opens every Parquet output of a pipeline run with Python polars and checks the dtypes a
user relies on. Usage: python3 scripts/check_outputs.py data/kuairand"""

import sys
from pathlib import Path

import polars as pl

ID = (pl.Int64, pl.String)

# file name -> {column: accepted dtypes}; objective columns are checked by prefix below.
EXPECTED = {
    "interactions.parquet": {
        "user_idx": (pl.UInt32,), "video_idx": (pl.UInt32,),
        "ts": (pl.Datetime("ms", "UTC"),), "split": (pl.String,),
        "click": (pl.Boolean,), "like": (pl.Boolean,), "dislike": (pl.Boolean,),
        "play_time_ms": (pl.Float32,), "rating": (pl.Float32,),
    },
    "users.parquet": {"user_idx": (pl.UInt32,), "user_id": ID},
    "videos.parquet": {"video_idx": (pl.UInt32,), "video_id": ID},
    "candidates.parquet": {
        "source_idx": (pl.UInt32,), "source_id": ID, "candidate_idx": (pl.UInt32,),
        "candidate_id": ID, "co_count": (pl.UInt32,), "score": (pl.Float32,), "rank": (pl.UInt32,),
    },
    "routing.parquet": {"user_idx": (pl.UInt32,), "ts": (pl.Datetime("ms", "UTC"),)},
    "related.parquet": {
        "source_id": ID, "rank": (pl.UInt32,), "candidate_id": ID, "score": (pl.Float32,),
    },
    "weights.parquet": {
        "objective": (pl.String,), "manual_weight": (pl.Float64,),
        "learned_weight": (pl.Float64,), "auc": (pl.Float64,),
    },
}
PREFIXES = {
    "als_": {"linear_score": (pl.Float32,), "source_id": ID, "candidate_id": ID},
    "twotower_": {"nonlinear_score": (pl.Float32,), "source_id": ID, "candidate_id": ID},
}


def expected_for(name: str) -> dict:
    if name in EXPECTED:
        return EXPECTED[name]
    is_table_of_factors = name.endswith(("_videos.parquet", "_users.parquet"))
    for prefix, columns in PREFIXES.items():
        if name.startswith(prefix) and not is_table_of_factors:
            return columns
    return {}


def main(folder: Path) -> int:
    files = sorted(folder.glob("*.parquet"))
    if not files:
        print(f"no Parquet files in {folder}", file=sys.stderr)
        return 1
    failures = 0
    for path in files:
        frame = pl.read_parquet(path)
        schema = frame.schema
        for column, dtypes in expected_for(path.name).items():
            found = schema.get(column)
            if found is None or not any(found == d for d in dtypes):
                print(f"{path.name}: column {column}: expected {dtypes}, found {found}")
                failures += 1
        if path.name == "related.parquet":
            for column, dtype in schema.items():
                if column.startswith(("s_", "contrib_")) and dtype != pl.Float32:
                    print(f"{path.name}: column {column}: expected Float32, found {dtype}")
                    failures += 1
        print(f"{path.name}: {frame.height} rows, {len(schema)} columns")
    related = pl.read_parquet(folder / "related.parquet")
    top = related.filter(pl.col("source_id") == related["source_id"][0]).sort("rank").head(5)
    print(top.select("source_id", "rank", "candidate_id", "score"))
    print("dtype check:", "ok" if failures == 0 else f"{failures} problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
