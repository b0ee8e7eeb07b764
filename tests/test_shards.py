"""Webdataset shards: writers for every layout, the exactly-once evaluation pass, the
resumable training stream, and corrupt-data handling (in process; tiny synthetic sets)."""
import copy
import io
import json
import os
import tarfile

import mona_scale.data.shards.budget as budget
from mona_scale.data import synthetic_dataset_dicts
from mona_scale.data.classification import ClassificationMapper
from mona_scale.data.cls_readers import image_folder_dicts, split_file_dicts
from mona_scale.data.shards import (
    CorruptDataError,
    ShardSet,
    build_stream_test_loader,
    build_stream_train_loader,
    shard_dataset,
    shard_dicts,
    synthetic_shards,
    write_shards,
)
from mona_scale.data.shards.cli import main as mona_shards
from mona_scale.data.shards.sources import (
    ade20k_source,
    catalog_source,
    coco_source,
    imagefolder_source,
    splitfile_source,
)

import numpy as np
import pytest
import torch
import webdataset as wds
from detectron2.data import DatasetCatalog, DatasetMapper, MetadataCatalog
from detectron2.data import transforms as T
from detectron2.data.datasets import load_sem_seg, load_voc_instances
from detectron2.utils.events import EventStorage
from PIL import Image

N_INST, N_CLS = 16, 12


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Synthetic instance and classification sets, their shards (4 and 3 per shard)."""
    root = str(tmp_path_factory.mktemp("synthetic"))
    return {"root": root,
            "inst": synthetic_shards("shapes_instances_val", root, N_INST, shard_size=4),
            "cls": synthetic_shards("shapes_cls_val", root, N_CLS, shard_size=3)}


def file_dicts(data, name, n):
    return synthetic_dataset_dicts(name, data["root"], n)


def strip(records):
    return [{k: v for k, v in r.items() if k != "file_name"} for r in records]


def eval_mapper():
    """Decodes image and instances without augmentation (is_train keeps annotations)."""
    return DatasetMapper(is_train=True, augmentations=[], image_format="RGB",
                         use_instance_mask=True, instance_mask_format="bitmask")


def train_mapper():
    return DatasetMapper(is_train=True, augmentations=[
        T.ResizeShortestEdge((48, 64, 80), max_size=160, sample_style="choice"),
        T.RandomFlip()], image_format="RGB", use_instance_mask=True,
        instance_mask_format="bitmask")


def test_manifest_counts_hashes_and_webdataset_compatibility(data):
    import webdataset as wds
    manifest = json.load(open(data["inst"]))
    assert manifest["complete"] and manifest["task"] == "instances"
    assert manifest["classes"] == ["circle", "square", "triangle"]
    assert manifest["metadata"]["thing_dataset_id_to_contiguous_id"] == {"1": 0, "2": 1, "3": 2}
    assert [s["samples"] for s in manifest["shards"]] == [4, 4, 4, 4]
    assert manifest["source"]["dataset"] == "shapes_instances_val"
    first = os.path.join(os.path.dirname(data["inst"]), manifest["shards"][0]["name"])
    from mona_scale.data.shards.writer import sha256_file
    assert sha256_file(first) == manifest["shards"][0]["sha256"]
    # plain webdataset reads the same tars: original PNG bytes + JSON annotations
    sample = next(iter(wds.WebDataset(first, shardshuffle=False)))
    record = json.loads(sample["json"])
    original = file_dicts(data, "shapes_instances_val", N_INST)[0]
    assert sample["png"] == open(original["file_name"], "rb").read()
    assert record["annotations"][0]["category_id"] == original["annotations"][0]["category_id"]


def test_evaluation_pass_yields_the_file_based_dicts(data):
    shards = shard_dataset("t_inst_val", data["inst"])
    streamed = [batch[0] for batch in build_stream_test_loader(shards, None, rank=0,
                                                               world_size=1)]
    files = file_dicts(data, "shapes_instances_val", N_INST)
    assert strip(streamed) == strip(files)
    assert strip(DatasetCatalog.get("t_inst_val")) == strip(files)
    assert MetadataCatalog.get("t_inst_val").thing_classes == ["circle", "square", "triangle"]
    # after decoding: the mapper sees the same images and instances
    mapped = [b[0] for b in build_stream_test_loader(shards, eval_mapper(), rank=0,
                                                     world_size=1)]
    mapper = eval_mapper()
    for stream, record in zip(mapped, files, strict=True):
        reference = mapper(copy.deepcopy(record))
        assert torch.equal(stream["image"], reference["image"])
        assert torch.equal(stream["instances"].gt_boxes.tensor,
                           reference["instances"].gt_boxes.tensor)
        assert torch.equal(stream["instances"].gt_masks.tensor,
                           reference["instances"].gt_masks.tensor)
        assert stream["file_name"].startswith("shard://shapes_instances_val-0000")


def test_classification_pass_and_splitfile_imagefolder_sources(data, tmp_path):
    files = file_dicts(data, "shapes_cls_val", N_CLS)
    shards = ShardSet.from_manifests(data["cls"])
    mapper = ClassificationMapper(False, [T.Resize((32, 32))])
    streamed = [b[0] for b in build_stream_test_loader(shards, mapper, rank=0, world_size=1)]
    for stream, record in zip(streamed, files, strict=True):
        reference = mapper(dict(record))
        assert torch.equal(stream["image"], reference["image"])
        assert stream["label"] == reference["label"]
    base = os.path.join(data["root"], "shapes_cls")
    split = splitfile_source(os.path.join(base, "val.txt"), base, num_classes=3,
                             classes=["circle", "square", "triangle"])
    assert split.dicts == split_file_dicts(os.path.join(base, "val.txt"), base, 3)
    assert strip(split.dicts) == [{k: r[k] for k in ("image_id", "label")} for r in files]
    folder = imagefolder_source(os.path.join(base, "val"))
    assert folder.classes == ["circle", "square", "triangle"]  # sorted directory names
    assert folder.dicts == image_folder_dicts(os.path.join(base, "val"))
    manifest = write_shards(folder, str(tmp_path / "folder"), shard_size=5, progress=False)
    assert manifest["num_samples"] == N_CLS and len(manifest["shards"]) == 3
    # multi-label split files (VOC07 style): multi-hot labels survive the round trip
    lines = [f"val/{os.path.basename(os.path.dirname(r['file_name']))}/"
             f"{os.path.basename(r['file_name'])} {r['label']} {(r['label'] + 1) % 3}"
             for r in files]
    (tmp_path / "multi.txt").write_text("\n".join(lines) + "\n")
    assert mona_shards(["splitfile", "--split-file", str(tmp_path / "multi.txt"), "--root", base,
                        "--multi-label", "--num-classes", "3", "--out", str(tmp_path / "multi"),
                        "--shard-size", "4", "--no-progress"]) == 0
    expected = split_file_dicts(str(tmp_path / "multi.txt"), base, 3, multi_label=True)
    assert strip(shard_dicts(ShardSet.from_manifests(str(tmp_path / "multi")))) == strip(expected)


def test_two_ranks_two_workers_cover_every_sample_exactly_once(data):
    shards = ShardSet.from_manifests(data["inst"])
    seen = []
    for rank in (0, 1):
        loader = build_stream_test_loader(shards, None, num_workers=2, rank=rank, world_size=2)
        ids = [batch[0]["image_id"] for batch in loader]
        assert len(ids) == len(loader) == 8  # one 4-sample shard per (rank, worker)
        seen += ids
    assert sorted(seen) == sorted(r["image_id"] for r in
                                  file_dicts(data, "shapes_instances_val", N_INST))
    with pytest.raises(ValueError, match="4 shard.*2 rank.*3 worker"):
        build_stream_test_loader(shards, None, num_workers=3, rank=0, world_size=2)


def batches(loader, n):
    iterator = iter(loader)
    return [next(iterator) for _ in range(n)]


def same_batches(a, b):
    return all([x["file_name"] for x in p] == [y["file_name"] for y in q]
               and all(torch.equal(x["image"], y["image"]) for x, y in zip(p, q, strict=True))
               for p, q in zip(a, b, strict=True))


@pytest.mark.parametrize("workers", [0, 2])
def test_resumed_training_stream_continues_where_it_stopped(data, workers):
    shards = ShardSet.from_manifests(data["inst"])

    def loader(seed=3):
        return build_stream_train_loader(shards, train_mapper(), 4, num_workers=workers,
                                         seed=seed, shuffle_buffer=3, segment_samples=6,
                                         rank=0, world_size=2)
    rng_before = np.random.get_state()[1].copy()
    full = batches(loader(), 8)
    if workers == 0:  # mapping in this process leaves the global RNGs as they were
        assert np.array_equal(np.random.get_state()[1], rng_before)
    assert all(len(b) == 2 for b in full)  # total 4 over 2 ranks
    names = [x["file_name"] for b in full for x in b]
    ranks_shards = {"0": {"000000", "000002"}, "2": {"000000", "000001"}}[str(workers)]
    assert len(set(names)) > 4  # rank 0 of 2 reads shards[rank * W + worker :: 2 * W]
    assert {n.split("/")[2] for n in names} == {
        f"shapes_instances_val-{s}.tar" for s in ranks_shards}
    for start in (1, 5):  # within the first restart, and after a restart boundary
        resumed = loader()
        resumed.load_state_dict({"batches": start})
        assert same_batches(batches(resumed, 8 - start), full[start:])
    assert not same_batches(batches(loader(seed=4), 8), full)


def stopped_after(loader, k):
    """Draw ``k`` batches, then return the loader's state (what a checkpoint saves)."""
    iterator = iter(loader)
    for _ in range(k):
        next(iterator)
    return loader.state_dict()


@pytest.mark.parametrize("resume_workers", [0, 1, 2])
def test_loader_state_dict_round_trip_with_any_dividing_worker_count(data, resume_workers):
    """torchdata's StatefulDataLoader protocol: a loader stopped after k batches, its state
    loaded into a new loader (also with another number of workers), continues with exactly
    the batches the uninterrupted loader yields."""
    shards = ShardSet.from_manifests(data["inst"])

    def loader(workers):
        return build_stream_train_loader(shards, train_mapper(), 4, num_workers=workers,
                                         seed=3 if workers == 2 else 5, shuffle_buffer=3,
                                         segment_samples=6, rank=1, world_size=2)
    full = batches(loader(2), 7)
    stopped = loader(2)
    state = stopped_after(stopped, 4)
    assert state["batches"] == 4 and state["world_size"] == 2 and state["streams"] == 2
    state = json.loads(json.dumps(state))  # survives a round trip through a file
    resumed = loader(resume_workers)  # another seed too: the saved one is adopted
    resumed.load_state_dict(state)
    assert same_batches(batches(resumed, 3), full[4:])
    assert resumed.state_dict() == {**state, "batches": 7}


def test_loader_state_of_another_layout_continues_resharded_with_a_warning(data, caplog):
    shards = ShardSet.from_manifests(data["inst"])

    def loader(workers, world_size=2):
        return build_stream_train_loader(shards, None, 4, num_workers=workers, seed=1,
                                         shuffle_buffer=2, rank=0, world_size=world_size)
    state = stopped_after(loader(0), 3)  # one stream per rank
    two_workers = loader(2)  # cannot serve one stream with two workers
    two_workers.load_state_dict(state)
    assert "re-sharded order (2 streams)" in caplog.text
    assert len(batches(two_workers, 1)[0]) == 2 and two_workers.state_dict()["batches"] == 4
    caplog.clear()
    one_rank = loader(0, world_size=1)
    one_rank.load_state_dict(state)
    assert "saved by 2 rank(s), loaded by 1" in caplog.text
    assert one_rank.state_dict()["batches"] == 3
    with pytest.raises(ValueError, match="non-negative int 'batches'"):
        loader(0).load_state_dict({"world_size": 2})
    test_loader = build_stream_test_loader(shards, None, rank=0, world_size=1)
    with pytest.raises(ValueError, match="training streams"):
        test_loader.load_state_dict(state)


# ---------------------------------------------------------------------------- corrupt data
def rewrite_shard(path, change):
    """Rewrite the tar at ``path`` with plain webdataset; ``change(key, members)`` edits
    members in place."""
    samples = list(wds.WebDataset(str(path), shardshuffle=False))
    with wds.TarWriter(str(path), encoder=False) as writer:
        for sample in samples:
            key = sample.pop("__key__")
            members = {k: v for k, v in sample.items() if not k.startswith("__")}
            change(key, members)
            writer.write({"__key__": key, **members})


@pytest.fixture
def copy_of(data, tmp_path):
    """A private copy of the instance shard set (to damage)."""
    import shutil
    directory = tmp_path / "shards"
    shutil.copytree(os.path.dirname(data["inst"]), directory)
    return directory


def stream_eval(directory, budget_fraction, mapper=None):
    loader = build_stream_test_loader(ShardSet.from_manifests(str(directory)), mapper,
                                      corrupt_budget=budget_fraction, rank=0, world_size=1)
    return [b[0] for b in loader], loader


def test_truncated_tar_is_counted_and_stops_past_the_budget(copy_of, caplog):
    victim = copy_of / "shapes_instances_val-000001.tar"
    victim.write_bytes(victim.read_bytes()[:int(victim.stat().st_size * 0.6)])
    records, loader = stream_eval(copy_of, 0.01)
    assert 12 <= len(records) < 16
    stats = loader.stats()
    assert stats["data_test/corrupt_truncated"] == 16 - len(records)
    assert stats["data_test/samples_seen"] == 16
    assert "shapes_instances_val-000001.tar" in caplog.text and "truncated" in caplog.text
    with pytest.raises(CorruptDataError, match="worst shard shapes_instances_val-000001.tar"):
        stream_eval(copy_of, 0.0)
    assert mona_shards(["verify", str(copy_of)]) == 1  # sha256 and count mismatch


def test_tar_cut_at_a_member_boundary_is_not_silently_short(copy_of, data, caplog):
    victim = copy_of / "shapes_instances_val-000003.tar"
    with tarfile.open(victim) as archive:
        members = archive.getmembers()
    end = members[3].offset_data + -(-members[3].size // 512) * 512  # after 2 samples
    victim.write_bytes(victim.read_bytes()[:end])
    records, loader = stream_eval(copy_of, 0.01)
    assert len(records) == 14 and loader.stats()["data_test/corrupt_truncated"] == 2
    assert "ended after 2 of its 4 samples" in caplog.text
    # a pipe: command that fails after its output: the samples it sent are not trusted
    # beyond the last complete one before the failure; all losses are counted
    directory = os.path.dirname(data["inst"])
    pipe = ShardSet.from_manifests(data["inst"], url_template=f"pipe:head -c {end} "
                                   f"{directory}/{{name}}; exit 3")
    loader = build_stream_test_loader(pipe, None, corrupt_budget=1.0, rank=0, world_size=1)
    assert len([b for b in loader]) == 4 and loader.stats()["data_test/corrupt_truncated"] == 12
    assert "exited with status 3" in caplog.text


def test_undecodable_image_is_counted_with_shard_and_key(copy_of, caplog):
    def damage(key, members):
        if key == "00000009":
            members["png"] = members["png"][:40] + b"garbage" * 20
    rewrite_shard(copy_of / "shapes_instances_val-000002.tar", damage)
    records, loader = stream_eval(copy_of, 0.01, eval_mapper())
    assert len(records) == 15 and loader.stats()["data_test/corrupt_undecodable"] == 1
    assert "shapes_instances_val-000002.tar key 00000009" in caplog.text
    with pytest.raises(CorruptDataError, match="worst shard shapes_instances_val-000002.tar"):
        stream_eval(copy_of, 0.0, eval_mapper())


@pytest.mark.parametrize("problem", ["category", "nan_box", "bad_json", "no_image"])
def test_invalid_annotations_are_counted_and_budgeted(copy_of, caplog, problem):
    def damage(key, members):
        if key not in ("00000004", "00000006"):
            return
        record = json.loads(members["json"])
        if problem == "category":
            record["annotations"][0]["category_id"] = 7
        elif problem == "nan_box":
            record["annotations"][0]["bbox"][2] = float("nan")
        elif problem == "no_image":
            del members["png"]
        members["json"] = b"{not json" if problem == "bad_json" else json.dumps(record).encode()
    rewrite_shard(copy_of / "shapes_instances_val-000001.tar", damage)
    records, loader = stream_eval(copy_of, 0.01)
    assert len(records) == 14 and loader.stats()["data_test/corrupt_invalid"] == 2
    assert "shapes_instances_val-000001.tar key 00000004" in caplog.text
    with pytest.raises(CorruptDataError, match=r"2 corrupt samples of \d+ seen.*worst shard "
                                               "shapes_instances_val-000001.tar"):
        stream_eval(copy_of, 0.001)  # allows one (0.1 % of max(seen, 1000))


def test_training_stream_reports_corrupt_counts_to_event_storage(copy_of):
    def damage(key, members):
        if key == "00000000":
            members["json"] = b"[]"
    rewrite_shard(copy_of / "shapes_instances_val-000000.tar", damage)
    loader = build_stream_train_loader(ShardSet.from_manifests(str(copy_of)), None, 2,
                                       rank=0, world_size=1, shuffle_buffer=2,
                                       corrupt_budget=0.5)
    with EventStorage(0) as storage:
        batches(loader, 12)
        latest = {k: v[0] for k, v in storage.latest().items()}
    assert latest["data/corrupt_invalid"] >= 1
    assert latest["data/samples_seen"] >= 24
    assert loader.stats()["data/corrupt_samples"] == latest["data/corrupt_samples"]


def test_training_stream_without_readable_samples_stops_instead_of_hanging(copy_of):
    for tar in copy_of.glob("*.tar"):
        tar.write_bytes(tar.read_bytes()[:100])
    loader = build_stream_train_loader(ShardSet.from_manifests(str(copy_of)), None, 2,
                                       rank=0, world_size=1, corrupt_budget=1.0)
    with pytest.raises(CorruptDataError, match="gave no usable sample"):
        batches(loader, 1)


def test_budget_allows_a_fraction_of_at_least_a_thousand():
    assert budget.allowed_corrupt(0.001, 10) == 1.0
    assert budget.allowed_corrupt(0.001, 50_000) == 50.0


# ---------------------------------------------------------------------------- writers
def test_writer_resumes_keeping_finished_shards_and_reports_invalid(data, tmp_path, caplog):
    source = coco_source(os.path.join(data["root"], "shapes_instances", "val.json"),
                         os.path.join(data["root"], "shapes_instances", "val"), "val")
    bad = source.dicts[5]["file_name"] = str(tmp_path / "missing.png")
    out = tmp_path / "coco"
    first = write_shards(source, str(out), shard_size=4, max_invalid=0.01, progress=False)
    assert first["num_samples"] == 15 and first["shards"][1]["skipped"][0]["source"] == \
        os.path.relpath(bad, source.root)
    assert "missing.png" in caplog.text
    parallel = write_shards(source, str(tmp_path / "parallel"), shard_size=4, max_invalid=0.01,
                            progress=False, workers=2)
    assert parallel["shards"] == first["shards"]  # same bytes from forked writers
    # an interrupted run: shard 2 half-written (.partial), shard 3 gone, manifest partial
    mtime = os.stat(out / "val-000000.tar").st_mtime_ns
    (out / "val-000002.tar").rename(out / "val-000002.tar.tmp.4242")  # a killed writer's
    (out / "val-000003.tar").unlink()
    second = write_shards(source, str(out), shard_size=4, max_invalid=0.01, progress=False)
    assert os.stat(out / "val-000000.tar").st_mtime_ns == mtime  # kept
    assert second["shards"] == first["shards"]  # rewritten byte-identically
    assert not list(out.glob("*.tmp.*"))
    with pytest.raises(CorruptDataError, match="worst shard val-000001.tar"):
        write_shards(source, str(tmp_path / "strict"), shard_size=4, max_invalid=0.0,
                     progress=False)
    # the command line: COCO json + images -> the file loader's dicts (ids mapped)
    base = os.path.join(data["root"], "shapes_instances")
    assert mona_shards(["coco", "--json", os.path.join(base, "val.json"), "--images",
                        os.path.join(base, "val"), "--out", str(tmp_path / "cli"),
                        "--shard-size", "8", "--no-progress"]) == 0
    assert strip(shard_dicts(ShardSet.from_manifests(str(tmp_path / "cli")))) == \
        strip(file_dicts(data, "shapes_instances_val", N_INST))


def test_mona_shards_output_reads_with_plain_webdataset(data, tmp_path):
    """Shards written by the mona-shards command line, read by a plain
    ``wds.WebDataset(urls).decode(...)`` pipeline, hold the source's pixels and COCO
    annotations (compared with the PNG files and the JSON, read here directly)."""
    base = os.path.join(data["root"], "shapes_instances")
    assert mona_shards(["coco", "--json", os.path.join(base, "val.json"), "--images",
                        os.path.join(base, "val"), "--out", str(tmp_path), "--shard-size", "5",
                        "--no-progress"]) == 0
    coco = json.load(open(os.path.join(base, "val.json")))
    images = {image["id"]: image for image in coco["images"]}
    category = {c["id"]: i for i, c in enumerate(sorted(coco["categories"],
                                                        key=lambda c: c["id"]))}
    urls = os.path.join(str(tmp_path), "val-{000000..000003}.tar")
    seen = []
    for sample in wds.WebDataset(urls, shardshuffle=False).decode("rgb8"):
        record = sample["json"]
        image = images[record["image_id"]]
        pixels = np.asarray(Image.open(os.path.join(base, "val", image["file_name"]))
                            .convert("RGB"))
        assert np.array_equal(sample["png"], pixels)
        assert (record["height"], record["width"]) == (image["height"], image["width"])
        expected = [(category[a["category_id"]], a["bbox"], a["segmentation"])
                    for a in coco["annotations"] if a["image_id"] == image["id"]]
        got = [(a["category_id"], a["bbox"], a["segmentation"]) for a in record["annotations"]]
        def canonical(anns):
            return sorted(json.dumps(a, sort_keys=True) for a in anns)
        assert canonical(got) == canonical(expected)
        seen.append(record["image_id"])
    assert sorted(seen) == sorted(images)


def write_jpeg(path, size, colour):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, colour).save(path, quality=90)


def test_voc_source_matches_detectron2s_loader(tmp_path):
    voc = tmp_path / "VOC2007"
    os.makedirs(voc / "Annotations")
    os.makedirs(voc / "ImageSets" / "Main")
    ids = ["000001", "000002", "000003"]
    for i, fileid in enumerate(ids):
        write_jpeg(str(voc / "JPEGImages" / f"{fileid}.jpg"), (60 + i, 40), (i * 50, 90, 20))
        (voc / "Annotations" / f"{fileid}.xml").write_text(
            f"<annotation><size><width>{60 + i}</width><height>40</height></size>"
            f"<object><name>{['dog', 'cat', 'person'][i]}</name><bndbox><xmin>3</xmin>"
            f"<ymin>4</ymin><xmax>30</xmax><ymax>35</ymax></bndbox></object></annotation>")
    (voc / "ImageSets" / "Main" / "trainval.txt").write_text("\n".join(ids) + "\n")
    assert mona_shards(["voc", "--dirname", str(voc), "--split", "trainval", "--out",
                        str(tmp_path / "out"), "--shard-size", "2", "--workers", "2",
                        "--no-progress"]) == 0
    shards = shard_dataset("t_voc", str(tmp_path / "out"))
    assert shards.metadata["year"] == 2007 and shards.task == "instances"
    from detectron2.data.datasets.pascal_voc import CLASS_NAMES
    expected = load_voc_instances(str(voc), "trainval", CLASS_NAMES)
    assert strip(DatasetCatalog.get("t_voc")) == strip(expected)
    assert mona_shards(["verify", str(tmp_path / "out")]) == 0


def test_verify_reads_a_relative_path_from_the_working_directory(copy_of, tmp_path,
                                                                 monkeypatch, capsys):
    """``mona-shards verify shards`` (a path relative to the working directory, as
    docs/streaming.md shows) checks that directory, not one under $DETECTRON2_DATASETS,
    and counts the 16 synthetic images written there."""
    monkeypatch.chdir(copy_of.parent)
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "elsewhere"))
    assert mona_shards(["verify", copy_of.name]) == 0
    assert json.loads(capsys.readouterr().out) == {"shards": 4, "samples": N_INST,
                                                   "problems": []}


def test_each_layout_command_describes_its_source(capsys):
    """``mona-shards voc --help`` shows what the VOC writer reads (its source's docstring)
    and the layout's own options."""
    with pytest.raises(SystemExit):
        mona_shards(["voc", "--help"])
    text = capsys.readouterr().out
    assert "load_voc_instances" in text and "--drop-difficult" in text and "--dirname" in text


def test_voc_shards_drop_difficult_objects_like_the_xml_says(tmp_path):
    """``mona-shards voc --drop-difficult``: each image keeps exactly its XML objects whose
    <difficult> is not 1 (counted here with ElementTree), as the file-based training set."""
    import xml.etree.ElementTree as ET

    from helpers.real_layouts import write_voc
    write_voc(tmp_path)
    voc = tmp_path / "VOC2007"
    assert mona_shards(["voc", "--dirname", str(voc), "--split", "trainval", "--drop-difficult",
                        "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    shard_dataset("t_voc_easy", str(tmp_path / "out"))
    records = {r["image_id"]: r for r in DatasetCatalog.get("t_voc_easy")}
    ids = (voc / "ImageSets" / "Main" / "trainval.txt").read_text().split()
    assert sorted(records) == sorted(ids)
    for image_id in ids:
        objects = ET.parse(voc / "Annotations" / f"{image_id}.xml").findall("object")
        easy = [o for o in objects if o.findtext("difficult") != "1"]
        assert 0 < len(easy) < len(objects)  # the fixture marks one object per image
        assert len(records[image_id]["annotations"]) == len(easy)
        boxes = [[float(o.findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
                 for o in easy]
        got = [a["bbox"] for a in records[image_id]["annotations"]]
        assert [[b[0] - 1, b[1] - 1, b[2], b[3]] for b in boxes] == got  # detectron2's 1-based


def test_ade20k_source_and_sem_seg_mapping(tmp_path):
    root = tmp_path / "ADEChallengeData2016"
    rng = np.random.default_rng(0)
    for i in range(3):
        name = f"ADE_train_{i:08d}"
        write_jpeg(str(root / "images" / "training" / f"{name}.jpg"), (48, 32), (i * 60, 10, 99))
        mask = rng.integers(0, 150, (32, 48)).astype(np.uint8)
        mask[0] = 255
        os.makedirs(root / "annotations_detectron2" / "training", exist_ok=True)
        Image.fromarray(mask).save(root / "annotations_detectron2" / "training" / f"{name}.png")
    source = ade20k_source(str(root), "training")
    assert len(source.classes) == 150 and source.metadata["ignore_label"] == 255
    write_shards(source, str(tmp_path / "ade"), shard_size=2, progress=False)
    shards = shard_dataset("t_ade", str(tmp_path / "ade"))
    expected = load_sem_seg(str(root / "annotations_detectron2" / "training"),
                            str(root / "images" / "training"))
    got = DatasetCatalog.get("t_ade")
    assert [{k: v for k, v in r.items() if "file_name" not in k} for r in got] == \
        [{k: v for k, v in r.items() if "file_name" not in k} for r in expected]
    assert MetadataCatalog.get("t_ade").stuff_classes[0] == source.classes[0]
    mapper = DatasetMapper(is_train=False, augmentations=[], image_format="RGB")
    streamed = [b[0] for b in build_stream_test_loader(shards, mapper, rank=0, world_size=1)]
    for stream, record in zip(streamed, expected, strict=True):
        reference = mapper(dict(record))
        assert torch.equal(stream["sem_seg"], reference["sem_seg"])
        assert torch.equal(stream["image"], reference["image"])


def test_urls_brace_patterns_pipe_and_file(data):
    directory = os.path.dirname(data["inst"])
    def urls(spec):
        return [s.url for s in ShardSet.from_urls(spec).shards]
    assert urls("a-{000..002}.tar") == ["a-000.tar", "a-001.tar", "a-002.tar"]
    assert urls(["x{a,b}", "y"]) == ["xa", "xb", "y"]
    pattern = os.path.join(directory, "shapes_instances_val-{000000..000003}.tar")
    by_path = shard_dataset("t_urls", urls=pattern, task="instances",
                            classes=["circle", "square", "triangle"])
    assert len(by_path.shards) == 4 and by_path.num_samples is None
    by_pipe = ShardSet.from_manifests(f"pipe:cat {directory}/manifest.json",
                                      url_template=f"pipe:cat {directory}/{{name}}")
    by_file = ShardSet.from_manifests(f"file://{directory}/manifest.json")
    reference = strip(shard_dicts(by_file))
    assert len(reference) == N_INST
    assert strip(shard_dicts(by_pipe)) == reference
    ids = [r["image_id"] for r in shard_dicts(by_path)]
    assert ids == [r["image_id"] for r in reference]


def test_object_storage_schemes_registered_with_webdataset_are_read(data, monkeypatch):
    """A URL scheme registered in webdataset's gopen table (as an object-store client would
    be) serves manifests and shards."""
    opened = []

    def store(url, mode="rb", bufsize=8192, **kw):
        opened.append(url)
        return open(url[len("store://"):], mode)
    monkeypatch.setitem(wds.gopen_schemes, "store", store)
    directory = os.path.dirname(data["inst"])
    shards = ShardSet.from_manifests(f"store://{directory}/manifest.json",
                                     url_template=f"store://{directory}/{{name}}")
    reference = strip(shard_dicts(ShardSet.from_manifests(data["inst"])))
    assert strip(shard_dicts(shards)) == reference and len(reference) == N_INST
    assert len(opened) == 1 + 4  # the manifest, then each shard


def test_memfs_serves_bytes_only_while_mapping():
    from mona_scale.data.shards.memfs import serving

    from detectron2.utils.file_io import PathManager
    buffer = io.BytesIO()
    Image.new("RGB", (5, 4)).save(buffer, format="PNG")
    with serving({"shard://s.tar/k.png": buffer.getvalue()}):
        with PathManager.open("shard://s.tar/k.png", "rb") as f:
            assert Image.open(f).size == (5, 4)
    with pytest.raises(FileNotFoundError, match="not being served"):
        PathManager.open("shard://s.tar/k.png", "rb")


def test_tar_members_are_reproducible(data, tmp_path):
    """The same source written again (later, elsewhere) gives byte-identical tars."""
    first = json.load(open(data["cls"]))
    file_dicts(data, "shapes_cls_val", N_CLS)  # registers the fixture's set
    again = write_shards(catalog_source("shapes_cls_val"), str(tmp_path), shard_size=3,
                         prefix="shapes_cls_val", progress=False)
    assert [s["sha256"] for s in again["shards"]] == [s["sha256"] for s in first["shards"]]
    with tarfile.open(tmp_path / again["shards"][0]["name"]) as archive:
        assert archive.getnames() == ["00000000.json", "00000000.png", "00000001.json",
                                      "00000001.png", "00000002.json", "00000002.png"]


def test_every_stream_config_loads_and_a_missing_manifest_says_how_to_write_it(tmp_path,
                                                                              monkeypatch):
    import glob

    from mona_scale.engine.config import load_config

    from detectron2.config import instantiate
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    configs = sorted(c for c in glob.glob(os.path.join(root, "configs", "*", "*_stream.py"))
                     if "/common/" not in c)  # whole configs, not the data pieces
    assert len(configs) >= 5
    for config in configs:
        cfg = load_config(config, [])
        assert "build_stream_train_loader" in str(cfg.dataloader.train._target_), config
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    cfg = load_config(os.path.join(root, "configs/coco/cascade_mask_rcnn_swin_b_mona_3x_stream.py"),
                      [])
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}/shards/coco_train2017.*mona-shards"):
        instantiate(cfg.dataloader.train.dataset)


def _manifest_with_first_name(copy_of, name):
    manifest = json.loads((copy_of / "manifest.json").read_text())
    manifest["shards"][0]["name"] = name
    (copy_of / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("template", [True, False])
def test_manifest_shard_name_cannot_run_a_command_or_leave_the_directory(copy_of, tmp_path,
                                                                         template):
    marker = tmp_path / "pwned"
    name = f"shapes_instances_val-000000.tar; touch {marker}" if template else "../../x.tar"
    _manifest_with_first_name(copy_of, name)
    url_template = f"pipe:cat {copy_of}/{{name}}" if template else None
    with pytest.raises(ValueError, match=r"shard name .*(touch|\.\./\.\./x\.tar).* not a plain"):
        shards = ShardSet.from_manifests(str(copy_of), url_template=url_template)
        shard_dicts(shards)  # the old code ran the name as part of the command here
    assert not marker.exists()


def test_shard_url_quotes_names_in_pipe_commands():
    from mona_scale.data.shards.manifest import shard_url
    assert shard_url("pipe:aws s3 cp s3://b/{name} -", "coco-000001.tar") == \
        "pipe:aws s3 cp s3://b/coco-000001.tar -"
    for bad in ["a b.tar", "$(reboot).tar", "x.tar`id`", "x|y", "-rf", "", "a/b.tar", 7]:
        with pytest.raises(ValueError, match="not a plain file name"):
            shard_url("pipe:cat {name}", bad)


def test_credentials_in_pipe_urls_stay_out_of_the_logs(copy_of, caplog):
    secret = "s3cr3tvalue"
    template = (f"pipe:AWS_SECRET_ACCESS_KEY={secret} head -c 3000 {copy_of}/{{name}} "
                f"# https://host/x?X-Amz-Signature={secret}")
    shards = ShardSet.from_manifests(str(copy_of), url_template=template)
    loader = build_stream_test_loader(shards, None, corrupt_budget=1.0, rank=0, world_size=1)
    records = [b[0] for b in loader]
    assert len(records) < N_INST and "truncated" in caplog.text  # the cut shards were logged
    assert secret not in caplog.text and "AWS_SECRET_ACCESS_KEY=<redacted>" in caplog.text
    by_urls = ShardSet.from_urls([f"pipe:curl -s 'https://h/a.tar?X-Amz-Signature={secret}'"])
    assert secret not in by_urls.shards[0].name  # names are logged
