"""Retriever checkpoints that ship with llmrec, so that a shipped fused order is the one its card measured.

A fusion model's test figures depend on the retriever's trained weights as much as on the fusion model. Neural
retrievers trained again on another CPU land on other weights (the same sums in another order), and the orders
move: on ml-latest-small the ensemble (LRURec + SASRec + EASE) retrained on a second machine went from test
NDCG@10 0.0772 to 0.0719 with the same code, data, settings and seed (docs/benchmarks/ranking.md section 11). So
the checkpoints that the shipped fusion models were fitted over ship beside them, in ``finetune/retrievers/``
(``llmrec/_retrievers`` in a wheel): one folder per fitted retriever, named exactly as ``fit_retriever`` names
its cache folder (the retriever and a digest of its fit data and settings, so only the same fit finds it), with
each member's ``state.json`` and ``best.safetensors`` and a ``manifest.json`` of their sha256 sums.

``install_shipped`` copies such a folder into the cache the first time that fit is asked for, after checking every
file against the manifest; the trainer then finds a finished checkpoint and loads it, and its own fingerprint
check (data and settings) applies as to any checkpoint. A cache folder that already exists (the user's own
training) is left alone. ``ship`` writes a folder and its manifest from a trained cache folder
(``benchmarks/ranking.py fusion --out``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from llmrec.errors import ModelError
from llmrec.fileutil import sha256_file
from llmrec.resources import retrievers_dir

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SHIPPED_FILES = ("state.json", "best.safetensors")  # what a finished checkpoint needs (last = best once stopped)


def shipped_folder(name: str) -> Path | None:
    """The shipped checkpoint folder for cache folder ``name``, or None when none ships."""
    folder = retrievers_dir() / name
    return folder if (folder / MANIFEST).is_file() else None


def manifest_files(source: Path) -> dict[str, str]:
    """The manifest's files (relative path -> sha256); one line naming the folder when it cannot be read."""
    try:
        files = json.loads((source / MANIFEST).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"shipped retriever {source}: unreadable {MANIFEST} ({exc}); reinstall llmrec") from exc
    return dict(files)


def verified_files(source: Path) -> dict[str, str]:
    """The manifest's files, each checked; one line naming the file when one differs."""
    files = manifest_files(source)
    for rel, digest in files.items():
        path = source / rel
        if not path.is_file() or sha256_file(path) != digest:
            raise ModelError(f"shipped retriever file {path} is missing or does not match its sha256 in {MANIFEST}; "
                             "reinstall llmrec")  # fmt: skip
    return files


def install_shipped(folder: Path) -> bool:
    """Copy the shipped checkpoint named like ``folder`` into it when ``folder`` does not exist yet; True if
    copied. Written whole: into a temporary sibling, then renamed, so a failure leaves no half checkpoint."""
    source = shipped_folder(folder.name)
    if source is None or folder.exists():
        return False
    files = verified_files(source)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.with_name(f"{folder.name}.shipped-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        for rel in files:
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / rel, tmp / rel)
            if Path(rel).name == "best.safetensors":
                # the trainer loads the last weights before restoring the best; a finished run's are the best
                shutil.copyfile(source / rel, tmp / Path(rel).parent / "last.safetensors")
        try:
            tmp.rename(folder)
        except OSError:  # another process installed it first
            if not folder.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("retriever checkpoint installed from %s (the one the shipped fusion models were fitted over)", source)
    return True


def differs_from_shipped(folder: Path) -> bool:
    """True when a checkpoint ships under ``folder``'s name and ``folder`` holds other weights (the user's own
    training, kept): the shipped fusion cards' figures were measured over the shipped ones."""
    source = shipped_folder(folder.name)
    if source is None or not folder.exists():
        return False
    files = manifest_files(source)
    return any(not (folder / rel).is_file() or sha256_file(folder / rel) != digest for rel, digest in files.items())


def ship(trained: Path, dest_root: Path | None = None, **about: str) -> Path:
    """Copy the finished checkpoints under cache folder ``trained`` to ``dest_root / trained.name`` with a
    manifest (their sha256 sums and ``about``: the data set, the retriever, how it was fitted); returns that folder.
    Refuses an unfinished checkpoint."""
    dest = (dest_root or retrievers_dir()) / trained.name
    states = sorted(trained.rglob("state.json"))
    if not states:
        raise ModelError(f"ship: {trained} holds no trained checkpoint (state.json)")
    for state in states:
        # a run in progress also reads "epochs"; only early stopping says for certain that training ended
        if json.loads(state.read_text(encoding="utf-8")).get("stopped") != "patience":
            raise ModelError(f"ship: the checkpoint in {state.parent} did not stop early (patience); ship a finished "
                             "run")  # fmt: skip
    shutil.rmtree(dest, ignore_errors=True)  # replaced whole: no file of an earlier checkpoint stays beside it
    files = {}
    for state in states:
        for name in SHIPPED_FILES:
            rel = (state.parent / name).relative_to(trained).as_posix()
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(trained / rel, dest / rel)
            files[rel] = sha256_file(dest / rel)
    (dest / MANIFEST).write_text(json.dumps({**about, "files": files}, indent=2) + "\n", encoding="utf-8")
    return dest
