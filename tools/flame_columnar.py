#!/usr/bin/env python3
"""flame's reader of columnar and JSON data, run by libflame for a dataset file
named .parquet, .arrow (the Arrow IPC stream or file format, as the `datasets`
library caches its data) or .json (an array of objects, or JSON lines):

    flame_columnar.py FILE FIELD    writes the rows' FIELD (null rows skipped)
                                    to stdout in batches: a line with the row
                                    count, a line with each row's length in
                                    bytes, then the rows' UTF-8 end to end
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


def column_rows(pa, batches, field, schema):
    """each batch's non-null values of the column, as bytes"""
    if field not in schema.names:
        fail(f"no column '{field}' (columns: {', '.join(schema.names)}); set training.text_field")
    kind = schema.field(field).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        fail(f"column '{field}' holds {kind}, not text")
    for batch in batches:
        column = batch.column(field).drop_null()
        yield column.cast(pa.large_binary()).to_pylist()


def parquet_rows(pa, path, field):
    # pre_buffer (pyarrow's default) would keep every row group read: memory the size of the file
    f = pa.parquet.ParquetFile(path, pre_buffer=False)
    schema = f.schema_arrow
    batches = f.iter_batches(batch_size=BATCH_ROWS, columns=[field]) if field in schema.names else []
    return column_rows(pa, batches, field, schema)


def arrow_rows(pa, path, field):
    source = pa.memory_map(path)
    try:
        reader = pa.ipc.open_stream(source)
    except pa.ArrowInvalid:
        source.seek(0)
        file_reader = pa.ipc.open_file(source)
        reader = (file_reader.get_batch(i) for i in range(file_reader.num_record_batches))
        return column_rows(pa, reader, field, file_reader.schema)
    return column_rows(pa, reader, field, reader.schema)


def json_rows(path, field):
    """the objects' field values, as bytes, in batches"""
    batch = []
    for n, value in enumerate(json_values(path, field)):
        if value is None:
            continue
        if not isinstance(value, str):
            fail(f"row {n + 1}: '{field}' holds {type(value).__name__}, not text")
        batch.append(value.encode("utf-8", "surrogatepass"))
        if len(batch) == BATCH_ROWS:
            yield batch
            batch = []
    yield batch


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
        rows = json_rows(path, field)
    else:
        pa = import_pyarrow()
        try:
            rows = (parquet_rows if name.endswith(".parquet") else arrow_rows)(pa, path, field)
        except (pa.ArrowException, OSError) as e:
            fail(f"cannot read: {e}")
    out = sys.stdout.buffer
    try:
        for batch in rows:
            if batch:
                lengths = " ".join(str(len(b)) for b in batch)
                out.write(f"{len(batch)}\n{lengths}\n".encode() + b"".join(batch))
        out.flush()
    except BrokenPipeError:  # flame stopped reading (a seek, the end of training)
        sys.stderr.close()
        sys.exit(0)
    except Exception as e:  # pyarrow's errors on damaged data while streaming
        fail(f"cannot read: {e}")


if __name__ == "__main__":
    main()
