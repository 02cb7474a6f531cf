"""Writes the parquet fixtures the corpus reader is tested on (Tests/CorpusTests/Fixtures/parquet).

Each file holds the same rows, written by pyarrow with one combination of compression
(none, snappy, gzip, zstd), data page version (1.0, 2.0) and dictionary encoding (on, off),
in several row groups and several pages per column chunk, with nulls in the text column and
an integer column before it. expected.json holds the rows as pyarrow wrote them (null for a
null). lists-*.parquet hold lists of strings (top-level and in a struct) and
integer columns, lists.json their rows. A few more files carry what the reader must refuse with a clear error: an encoding it
does not decode, a codec it does not have, a nested column, a text column of another type.

    python3 tools/parquet_fixtures.py          # needs pyarrow (pip install pyarrow)
    python3 tools/parquet_fixtures.py nested   # only the list and integer files
    python3 tools/parquet_fixtures.py delta-null-pages   # only the all-null delta page files
    python3 tools/parquet_fixtures.py format1  # only the format-1.0 (PLAIN_DICTIONARY) file
"""
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "CorpusTests", "Fixtures", "parquet")


def rows():
    texts = []
    for i in range(40):
        if i % 7 == 3:
            texts.append(None)
        elif i % 11 == 5:
            texts.append("")
        elif i % 5 == 0:
            texts.append("Ünïcödé ✓ 日本語 " * (1 + i % 3) + f"row {i}")
        elif i % 9 == 1:
            texts.append(("a long document, " * 60) + str(i))
        else:
            # Repeats, so dictionary encoding has something to share.
            texts.append(f"First Citizen:\nBefore we proceed any further, hear me speak. ({i % 4})\n")
    return texts


def rows_table(texts):
    """The rows as the fixtures hold them: an integer id column, then the text column."""
    return pa.table({"id": pa.array(range(len(texts)), pa.int64()), "text": pa.array(texts, pa.string())})


def main():
    os.makedirs(OUT, exist_ok=True)
    texts = rows()
    table = rows_table(texts)
    for codec in ["none", "snappy", "gzip", "zstd"]:
        for version in ["1.0", "2.0"]:
            for dictionary in [True, False]:
                name = f"{codec}-v{version[0]}-{'dict' if dictionary else 'plain'}.parquet"
                pq.write_table(table, os.path.join(OUT, name), compression=codec, data_page_version=version,
                               use_dictionary=dictionary, row_group_size=16, data_page_size=512,
                               write_statistics=True)
    # A required (non-null) column: no definition levels.
    required = pa.table({"text": pa.array([t or "-" for t in texts], pa.string())},
                        schema=pa.schema([pa.field("text", pa.string(), nullable=False)]))
    pq.write_table(required, os.path.join(OUT, "required.parquet"), compression="zstd", row_group_size=16)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"rows": texts, "required": [t or "-" for t in texts]}, f, ensure_ascii=False, indent=0)

    # The delta encodings of strings, in both page versions (several pages, nulls).
    for encoding, short in [("DELTA_LENGTH_BYTE_ARRAY", "delta-length"), ("DELTA_BYTE_ARRAY", "delta-prefix")]:
        for version in ["1.0", "2.0"]:
            pq.write_table(table, os.path.join(OUT, f"{short}-v{version[0]}.parquet"), use_dictionary=False,
                           column_encoding={"text": encoding}, compression="zstd", data_page_version=version,
                           row_group_size=16, data_page_size=512)
    # Uncompressed, so that corrupted bytes reach the delta decoder.
    pq.write_table(table, os.path.join(OUT, "delta-prefix-none.parquet"), use_dictionary=False,
                   column_encoding={"text": "DELTA_BYTE_ARRAY"}, compression="none", row_group_size=16, data_page_size=512)
    duckdb_fixture(texts)
    format1_fixture(table)

    # LZ4 (pyarrow writes LZ4_RAW) and Brotli, both page versions.
    for codec in ["lz4", "brotli"]:
        for version in ["1.0", "2.0"]:
            pq.write_table(table, os.path.join(OUT, f"{codec}-v{version[0]}.parquet"), compression=codec,
                           data_page_version=version, row_group_size=16, data_page_size=512)

    # What the reader refuses.
    nested = pa.table({"text": pa.array([{"body": "x"}] * 3)})
    pq.write_table(nested, os.path.join(OUT, "bad-nested.parquet"))
    numbers = pa.table({"text": pa.array([1, 2, 3], pa.int32())})
    pq.write_table(numbers, os.path.join(OUT, "bad-type.parquet"))


def duckdb_fixture(texts):
    """duckdb-v2.parquet: the rows as DuckDB writes them with PARQUET_VERSION V2 (data pages
    v2, delta encodings); skipped where the duckdb package is missing."""
    try:
        import duckdb
    except ImportError:
        print("duckdb not installed: duckdb-v2.parquet not rewritten")
        return
    con = duckdb.connect()
    con.execute("CREATE TABLE t (id BIGINT, text VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(texts)))
    path = os.path.join(OUT, "duckdb-v2.parquet")
    con.execute(f"COPY (SELECT * FROM t ORDER BY id) TO '{path}' (FORMAT PARQUET, PARQUET_VERSION V2, ROW_GROUP_SIZE 16)")


def format1_fixture(table):
    """format1-v1-dict.parquet: the rows in Parquet format version 1.0, as older writers
    (parquet-mr 1.x, pyarrow's version="1.0") write them: dictionary pages and dictionary
    indices both in the PLAIN_DICTIONARY encoding, not PLAIN and RLE_DICTIONARY."""
    pq.write_table(table, os.path.join(OUT, "format1-v1-dict.parquet"), version="1.0", compression="snappy",
                   data_page_version="1.0", use_dictionary=True, row_group_size=16, data_page_size=512)


def long_run_fixtures():
    """long-runs-v1/v2.parquet and long-runs.json (their rows); empty.parquet."""
    # Long runs: 200 nulls, 300 equal strings, then mixed rows and 100 nulls, in one page, so
    # the definition levels and dictionary indices are RLE runs of 64 or more (run headers
    # of two or more varint bytes).
    long_runs = [None] * 200 + ["the same line"] * 300 + [f"row {i}" if i % 3 else None for i in range(150)] + [None] * 100
    long_table = pa.table({"text": pa.array(long_runs, pa.string())})
    for version in ["1.0", "2.0"]:
        pq.write_table(long_table, os.path.join(OUT, f"long-runs-v{version[0]}.parquet"), compression="zstd",
                       data_page_version=version, use_dictionary=True, row_group_size=10000, data_page_size=1 << 20)
    # An empty table (pyarrow writes one empty row group) reads as no rows.
    pq.write_table(pa.table({"text": pa.array([], pa.string())}), os.path.join(OUT, "empty.parquet"))
    with open(os.path.join(OUT, "long-runs.json"), "w") as f:
        json.dump(long_runs, f, indent=0)


def delta_null_page_fixtures():
    """delta-null-pages-*.parquet: a page of eight rows, all null, between pages that hold
    strings, in each delta encoding and page version. The null page's values are a delta
    header of no values; the rows after it must not shift."""
    texts = [None if 8 <= i < 16 else f"line {i}" for i in range(24)]
    table = pa.table({"text": pa.array(texts, pa.string())})
    for encoding, short in [("DELTA_LENGTH_BYTE_ARRAY", "length"), ("DELTA_BYTE_ARRAY", "prefix")]:
        for version in ["1.0", "2.0"]:
            # A page at every batch of eight rows (the page size is reached after each batch).
            pq.write_table(table, os.path.join(OUT, f"delta-null-pages-{short}-v{version[0]}.parquet"), use_dictionary=False,
                           column_encoding={"text": encoding}, compression="none", data_page_version=version,
                           write_batch_size=8, data_page_size=1)


def nested_fixtures():
    """lists-v1/v2-dict/plain.parquet and lists.json (their rows): lists of strings at the top
    level (MMLU's choices) and inside a struct (ARC's choices.text and choices.label), with
    empty lists, null lists, null structs and null elements, a list of 150 strings (repetition
    level runs of 64 or more), over several row groups and pages; and integer columns (INT64
    with nulls, INT32 with negatives)."""
    tags, choices, answers, smalls = [], [], [], []
    for i in range(60):
        if i == 30:
            tags.append([f"t{j}" for j in range(150)])
        elif i % 13 == 4:
            tags.append(None)
        elif i % 11 == 2:
            tags.append([])
        else:
            tags.append([f"tag {i}-{j}" if (i + j) % 9 else None for j in range(1 + i % 5)])
        if i % 17 == 6:
            choices.append(None)
        elif i % 19 == 7:
            choices.append({"text": None, "label": ["A"]})
        else:
            n = 3 + i % 3
            choices.append({"text": [f"choice {k} of {i} ✓" for k in range(n)], "label": ["ABCDE"[k] for k in range(n)]})
        answers.append(None if i % 10 == 9 else i * 1_000_000_007 % 4)
        smalls.append(-i * 12345 if i % 2 else i)
    schema = pa.schema([("tags", pa.list_(pa.string())),
                        ("choices", pa.struct([("text", pa.list_(pa.string())), ("label", pa.list_(pa.string()))])),
                        ("answer", pa.int64()), ("small", pa.int32())])
    table = pa.table({"tags": tags, "choices": choices, "answer": answers, "small": smalls}, schema=schema)
    for version in ["1.0", "2.0"]:
        for dictionary in [True, False]:
            pq.write_table(table, os.path.join(OUT, f"lists-v{version[0]}-{'dict' if dictionary else 'plain'}.parquet"),
                           compression="zstd", data_page_version=version, use_dictionary=dictionary, row_group_size=25,
                           data_page_size=256)
    with open(os.path.join(OUT, "lists.json"), "w") as f:
        json.dump({"tags": tags, "choices_text": [c and c["text"] for c in choices],
                   "choices_label": [c and c["label"] for c in choices], "answer": answers, "small": smalls},
                  f, ensure_ascii=False, indent=0)


def jsonl_fixtures():
    """docs.jsonl and the same lines zstd-compressed as two frames (docs.jsonl.zst); bad.jsonl
    holds one line of each kind the reader refuses."""
    out = os.path.join(OUT, "..", "jsonl")
    os.makedirs(out, exist_ok=True)
    docs = [{"text": f"document {i}: " + "ünïcode ✓ " * (i % 3) + "\nsecond line", "id": i} for i in range(50)]
    docs[7]["text"] = ""
    lines = "".join(json.dumps(d, ensure_ascii=(i % 2 == 0)) + "\n" for i, d in enumerate(docs))
    with open(os.path.join(out, "docs.jsonl"), "w") as f:
        f.write(lines)
    half = len(lines) // 2
    frames = pa.compress(lines[:half].encode(), codec="zstd", asbytes=True) + pa.compress(lines[half:].encode(), codec="zstd", asbytes=True)
    with open(os.path.join(out, "docs.jsonl.zst"), "wb") as f:
        f.write(frames)
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump([d["text"] for d in docs], f, ensure_ascii=False)
    with open(os.path.join(out, "bad.jsonl"), "wb") as f:
        f.write(b'{"text": "fine"}\n')
        f.write(b'{"text": "cut short\n')
        f.write(b'{"body": "no text field"}\n')
        f.write(b'{"text": 42}\n')
        f.write(b'["not", "an", "object"]\n')
        f.write(b'{"text": "\xff\xfe not UTF-8"}\n')
        f.write(b'\n')
        f.write(b'{"text": "last"}')


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["nested"]:   # only the list and integer files
        nested_fixtures()
    elif sys.argv[1:] == ["delta-null-pages"]:   # only the all-null delta pages
        delta_null_page_fixtures()
    elif sys.argv[1:] == ["format1"]:   # only the format 1.0 file
        format1_fixture(rows_table(rows()))
    else:
        jsonl_fixtures()
        main()
        long_run_fixtures()
        delta_null_page_fixtures()
        nested_fixtures()
