"""The cross-species protocol (the SP-Ctrl paper's Fig. 12, measured): AP-10K poses generated from
prompts that name a species of *another family*.

Pairing, fixed and recorded: the species of the annotation file's ``categories`` (AP-10K lists all
54, each with its family as ``supercategory``) are sorted by (family, category id), and each is
paired with the species ``L`` places further on, cyclically, where ``L`` is the size of the largest
family. The families are contiguous runs of that order, none longer than ``L``, so the partner is
always of another family as long as ``2 L <= n`` (AP-10K: ``L`` = 10 Felidae, ``n`` = 54); and
the pairing is a permutation, so no two species are prompted as the same one.

A cross-species split is the AP-10K split with, per sample:
- every instance's ``category`` replaced by its prompted species (the pose, boxes and keypoints are
  untouched), so the detection metric prompts Grounding-DINO with the prompted species and CLIP
  groups by it;
- the prompt rebuilt from the same official template (picked by the image id) with the prompted
  species names, so generation and CLIP-Score read the prompted species;
- ``extra["pose_species"]``: the instances' species as annotated.

Pose AP is scored against the condition pose as usual; its per-species average is over the same
groups of instances as on plain AP-10K (the pairing is a permutation), named by the prompted
species. The whole pairing (every species, with the families) is in the split's ``stats``
(``cross_species``), which run.json and result.json keep under ``dataset.stats``; the split's
content hash covers the rewritten categories and prompts of its samples.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from spbench.data.ap10k import prompt_template, read_ap10k
from spbench.data.cleaning import read_annotation_file
from spbench.data.records import Sample, Split
from spbench.errors import SpbenchError
from spbench.schemas import AP10K

FAMILY_FIELD = "supercategory"
RULE = ("species sorted by (family, category id); each prompted as the species L places further on, cyclically, "
        "L = the size of the largest family (a permutation; never the same family)")


def cross_species_pairs(categories: list[dict], where: str = "the annotation file") -> dict[str, str]:
    """species -> the species of another family it is prompted as (see the module doc)."""
    species = []
    for i, c in enumerate(categories):
        family = c.get(FAMILY_FIELD)
        if not isinstance(family, str) or not family:
            raise SpbenchError(f"{where}: categories[{i}].{FAMILY_FIELD}: expected the species' family (a string, as "
                               f"AP-10K's files have), got {family!r}; the cross-species pairing needs it")
        species.append((family, int(c["id"]), str(c["name"])))
    species.sort()
    sizes: dict[str, int] = {}
    for family, _, _ in species:
        sizes[family] = sizes.get(family, 0) + 1
    n, largest = len(species), max(sizes.values(), default=0)
    if n == 0 or 2 * largest > n:
        biggest = max(sizes, key=sizes.get) if sizes else "none"
        raise SpbenchError(f"{where}: {n} species in {len(sizes)} families, the largest ({biggest}) holding {largest}: "
                           "no pairing gives every species one of another family (needs the largest family at most "
                           "half of the species); use the full AP-10K categories")
    names = [name for _, _, name in species]
    if len(set(names)) != n:
        raise SpbenchError(f"{where}: categories repeat a species name; each species must be listed once")
    return {names[i]: names[(i + largest) % n] for i in range(n)}


def families(categories: list[dict]) -> dict[str, str]:
    return {str(c["name"]): str(c.get(FAMILY_FIELD)) for c in categories}


def cross_sample(sample: Sample, pairs: dict[str, str]) -> Sample:
    """The sample with each instance prompted as its paired species (pose kept)."""
    instances = tuple(dataclasses.replace(inst, category=pairs[inst.category]) for inst in sample.instances)
    return dataclasses.replace(
        sample,
        instances=instances,
        prompt_template=prompt_template(sample.image_id, [i.category for i in instances], sample.scene),
        extra={**sample.extra, "pose_species": [i.category for i in sample.instances]},
    )


def cross_species_split(split: Split, categories: list[dict], where: str = "the annotation file") -> Split:
    """``split`` (AP-10K) under the cross-species protocol, its pairing in ``stats["cross_species"]``."""
    pairs = cross_species_pairs(categories, where)
    missing = sorted({i.category for s in split.samples for i in s.instances} - pairs.keys())
    if missing:
        raise SpbenchError(f"{where}: annotated species {', '.join(missing)} not among its categories")
    fam = families(categories)
    used = sorted({i.category for s in split.samples for i in s.instances})
    stats = {**split.stats, "cross_species": {
        "rule": RULE, "pairs": pairs, "families": fam,
        "used": {s: pairs[s] for s in used},  # the pairs this split's samples use
    }}
    return dataclasses.replace(split, samples=tuple(cross_sample(s, pairs) for s in split.samples), stats=stats)


def read_ap10k_cross(
    ann_file: str | os.PathLike,
    data_root: str | os.PathLike | None = None,
    *,
    dataset: str = "ap10k-cross",
    split: str | None = None,
    schema=None,
) -> Split:
    """An AP-10K annotation file read (:func:`spbench.data.ap10k.read_ap10k`, ``schema`` passed on)
    under the cross-species protocol."""
    plain = read_ap10k(ann_file, data_root, dataset=dataset, split=split, **({} if schema is None else {"schema": schema}))
    doc = read_annotation_file(Path(ann_file), (schema or AP10K).num_keypoints)
    return cross_species_split(plain, doc["categories"], str(ann_file))
