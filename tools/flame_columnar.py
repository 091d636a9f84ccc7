#!/usr/bin/env python3
"""flame's reader of columnar and JSON data, run by libflame for a dataset file
named .parquet, .arrow (the Arrow IPC stream or file format, as the `datasets`
library caches its data) or .json (an array of objects, or JSON lines):

    flame_columnar.py FILE FIELD    writes each row's FIELD as a JSON line
                                    {"FIELD": TEXT} on stdout (null rows skipped)
    flame_columnar.py --check       exits 0 when pyarrow can be imported

Streaming: parquet is read a row group's batch at a time, arrow a record
batch at a time, JSON in 1 MiB chunks; no file is read whole. On bad data it
writes one line on stderr and exits 3; without pyarrow, exits 2."""
import json
import sys

BATCH_ROWS = 1024
JSON_CHUNK = 1 << 20


def fail(message, status=3):
    sys.stderr.write(message.replace("\n", " ") + "\n")
    sys.exit(status)


def import_pyarrow():
    try:
        import pyarrow
        import pyarrow.ipc
        import pyarrow.parquet
        return pyarrow
    except ImportError as e:
        fail(f"pyarrow is not importable ({e}): pip install pyarrow", 2)


def column_values(batches, field, names):
    if field not in names:
        fail(f"no column '{field}' (columns: {', '.join(names)}); set training.text_field")
    for batch in batches:
        yield from batch.column(field).to_pylist()


def parquet_rows(pa, path, field):
    # pre_buffer (pyarrow's default) would keep every row group read: memory the size of the file
    f = pa.parquet.ParquetFile(path, pre_buffer=False)
    names = f.schema_arrow.names
    batches = f.iter_batches(batch_size=BATCH_ROWS, columns=[field]) if field in names else []
    return column_values(batches, field, names)


def arrow_rows(pa, path, field):
    source = pa.memory_map(path)
    try:
        reader = pa.ipc.open_stream(source)
    except pa.ArrowInvalid:
        source.seek(0)
        file_reader = pa.ipc.open_file(source)
        reader = (file_reader.get_batch(i) for i in range(file_reader.num_record_batches))
        return column_values(reader, field, file_reader.schema.names)
    return column_values(reader, field, reader.schema.names)


def json_values(path, field):
    """the objects of a JSON array, or of JSON lines, read in chunks"""
    decoder = json.JSONDecoder()
    with open(path, encoding="utf-8") as f:
        buf, at, in_array, started = "", 0, False, False
        while True:
            chunk = f.read(JSON_CHUNK)
            buf = buf[at:] + chunk
            at = 0
            while True:
                while at < len(buf) and buf[at] in " \t\r\n,":
                    at += 1
                if not started and at < len(buf):
                    started, in_array = True, buf[at] == "["
                    at += in_array
                    continue
                if at < len(buf) and buf[at] == "]" and in_array:
                    return
                try:
                    obj, end = decoder.raw_decode(buf, at)
                except json.JSONDecodeError as e:
                    if chunk:  # perhaps cut by the chunk: read more
                        break
                    if at >= len(buf):
                        if in_array:
                            fail("the JSON array is not closed")
                        return
                    fail(f"invalid JSON near byte {e.pos}: {e.msg}")
                if not isinstance(obj, dict):
                    fail("expected JSON objects (rows), found " + type(obj).__name__)
                at = end
                yield obj.get(field)
            if not chunk:
                if at < len(buf) and buf[at:].strip() and not (in_array and buf[at:].strip() == "]"):
                    fail("trailing data after the JSON")
                return


def main():
    if sys.argv[1:] == ["--check"]:
        import_pyarrow()
        return
    if len(sys.argv) != 3:
        fail("usage: flame_columnar.py FILE FIELD | --check", 2)
    path, field = sys.argv[1], sys.argv[2]
    name = path.lower()
    if name.endswith(".json"):
        rows = json_values(path, field)
    else:
        pa = import_pyarrow()
        try:
            rows = (parquet_rows if name.endswith(".parquet") else arrow_rows)(pa, path, field)
        except (pa.ArrowException, OSError) as e:
            fail(f"cannot read: {e}")
    out, lines = sys.stdout, []
    start = json.dumps(field) + ": "
    encode = json.JSONEncoder(ensure_ascii=False).encode
    try:
        for n, value in enumerate(rows):
            if value is None:
                continue
            if not isinstance(value, str):
                fail(f"row {n + 1}: '{field}' holds {type(value).__name__}, not text")
            lines.append("{" + start + encode(value) + "}\n")
            if len(lines) == BATCH_ROWS:  # one write a batch: fewer calls
                out.write("".join(lines))
                lines.clear()
        out.write("".join(lines))
        out.flush()
    except BrokenPipeError:  # flame stopped reading (a seek, the end of training)
        sys.stderr.close()
        sys.exit(0)
    except Exception as e:  # pyarrow's errors on damaged data while streaming
        fail(f"cannot read: {e}")


if __name__ == "__main__":
    main()
