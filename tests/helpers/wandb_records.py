"""Read a wandb offline run file (``run-<id>.wandb``) back, for tests.

The file is wandb's LevelDB-style record log (a 7-byte ``:W&B`` header, 32 KiB blocks,
records of 7-byte header + protobuf payload, possibly split across blocks).
"""
import glob
import json
import os
import struct

from wandb.proto import wandb_internal_pb2

BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _payloads(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b":W&B", f"{path} is not a wandb run file"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if left < 7 or kind == 0:  # block trailer / padding
            pos += left
            continue
        payload = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == FULL:
            yield payload
        elif kind == FIRST:
            pending = payload
        elif kind == MIDDLE:
            pending += payload
        elif kind == LAST:
            yield pending + payload


def read_run(output_dir):
    """(history rows, config keys, run ids) of every offline run under output_dir/wandb."""
    history, config, ids = [], set(), []
    for path in sorted(glob.glob(os.path.join(output_dir, "wandb", "offline-run-*",
                                              "run-*.wandb"))):
        ids.append(os.path.basename(path)[len("run-"):-len(".wandb")])
        for raw in _payloads(path):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(raw)
            kind = record.WhichOneof("record_type")
            if kind == "history":
                history.append({item.key or "/".join(item.nested_key): json.loads(
                    item.value_json) for item in record.history.item})
            elif kind == "config":
                config |= {item.key for item in record.config.update}
            elif kind == "run":
                config |= {item.key for item in record.run.config.update}
    return history, config, ids
