"""Average several exported models in one ONNX graph: an ensemble the analyzer serves as one model.

Two networks trained apart (a different seed and a warm restart) make partly different mistakes,
so the mean of their outputs is usually better than either. Every head's output is a probability
distribution (emotion, age over 0..100, ethnicity) or a probability (gender), so the mean is again
one, and the age expectation of the mean is the mean of the members' expectations. The members
share the input; the merged graph holds each member's nodes under a prefix and one ``Mean`` node
per head, so the analyzer, the benchmark and ``models.compare`` need no change. The cost is the
members' together (both run on every face), the same as averaging one model with the mirrored
face; the model card weighs the two on the validation splits.

    python -m audience.models.ensemble models/weights/audience-mt-2.1.0.json \\
        runs/mt-2.3e/export/audience-mt.json --version 2.3.0 --out runs/ens

reads each member's float32 network (the ``float32`` entry of an int8 manifest), merges them,
quantizes the merged graph to int8 (``models.quantize``) and writes
``<out>/audience-mt-<version>-int8.onnx`` and its manifest; ``--float32`` keeps the float32
``<out>/audience-mt-<version>.onnx`` instead. Warm starts refuse an ensemble: start from a member.

Each head is the mean over the members that trained it (a member's ``training.tasks``, all four
when absent): an emotion specialist (``audience train --tasks emotion``) counts for emotion
only. ``--use 2:age,gender,ethnicity`` narrows what a member (counted from 1) is used for.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from audience.core.errors import InputError
from audience.core.weights import sha256

log = logging.getLogger(__name__)


def merge(sources: list[Path], dst: Path, uses: list[tuple[str, ...]]) -> None:
    """Write one ONNX graph that runs every source graph on the same input and averages each
    output across the sources whose ``uses`` name it. The sources must agree on the input and
    on the output names."""
    import onnx
    from onnx import compose, helper

    models = [onnx.load(str(p)) for p in sources]
    first = models[0].graph
    inp = first.input[0]
    names = [o.name for o in first.output]
    for path, m in zip(sources[1:], models[1:], strict=True):
        if [o.name for o in m.graph.output] != names or len(m.graph.input) != 1:
            raise InputError(f"{path} has other outputs ({[o.name for o in m.graph.output]}) "
                             f"than {sources[0]} ({names}): only models of one manifest layout "
                             "can be averaged")
    nodes, inits, infos = [], [], []
    for i, m in enumerate(models):
        m = compose.add_prefix(m, f"m{i}/")
        g = m.graph
        nodes.append(helper.make_node("Identity", [inp.name], [g.input[0].name],
                                      name=f"m{i}/input"))
        nodes.extend(g.node)
        inits.extend(g.initializer)
        infos.extend(g.value_info)
    for name in names:
        used = [f"m{i}/{name}" for i in range(len(models)) if name in uses[i]]
        if not used:
            raise InputError(f"no member is used for the {name} head: every head needs one")
        nodes.append(helper.make_node("Mean", used, [name], name=f"mean/{name}"))
    graph = helper.make_graph(nodes, "ensemble", [copy.deepcopy(inp)],
                              [copy.deepcopy(o) for o in first.output], inits, value_info=infos)
    prune(graph)
    merged = helper.make_model(graph, opset_imports=list(models[0].opset_import),
                               producer_name="audience.models.ensemble")
    merged.ir_version = models[0].ir_version
    onnx.checker.check_model(merged)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(merged, str(dst))


def prune(graph) -> int:
    """Drop the nodes, weights and shape records no output needs (a specialist's untrained
    heads, a member's network used for no head); returns how many nodes went. ONNX keeps nodes
    in topological order, so one backward pass finds everything the outputs read."""
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    dropped = len(graph.node) - len(keep)
    for field, kept in ((graph.node, keep[::-1]),
                        (graph.initializer, [i for i in graph.initializer if i.name in needed]),
                        (graph.value_info, [v for v in graph.value_info if v.name in needed])):
        kept = list(kept)
        del field[:]
        field.extend(kept)
    return dropped


def used_parameters(manifest: dict, uses: tuple[str, ...]) -> int:
    """Parameters a member brings to the ensemble: all of a single network's; of an ensemble
    member, only its networks used for one of ``uses`` (the others are pruned away). Entries
    written before they carried ``parameters`` count an equal share of the whole."""
    members = manifest.get("ensemble")
    total = int(manifest.get("parameters", 0))
    if not members:
        return total
    return sum(int(m.get("parameters", total // len(members))) for m in members
               if set(m.get("used_for", ())) & set(uses))


def member_uses(training: dict, narrowed: str | None = None) -> tuple[str, ...]:
    """The heads a member counts for: those it trained (``training.tasks``; all four when
    absent), narrowed to ``narrowed`` (comma separated) where given."""
    from audience.models.train import TASKS, check_tasks

    trained = tuple(training.get("tasks") or TASKS)
    if narrowed is None:
        return trained
    try:
        asked = check_tasks(narrowed)
    except ValueError:
        asked = ()
    if not asked or set(asked) - set(trained):
        raise InputError(f"--use {narrowed!r}: a member can be used only for heads it trained "
                         f"({', '.join(trained)})")
    return asked


def parse_use(items: list[str], n: int) -> dict[int, str]:
    """``["2:age,gender"]`` -> ``{1: "age,gender"}`` (members counted from 1 on the command
    line)."""
    out: dict[int, str] = {}
    for item in items:
        index, sep, heads = item.partition(":")
        if not sep or not index.isdigit() or not 1 <= int(index) <= n:
            raise InputError(f"--use {item!r}: write MEMBER:HEADS with MEMBER 1 to {n}, "
                             "e.g. --use 2:age,gender,ethnicity")
        out[int(index) - 1] = heads
    return out


def ensemble(members: list[Path], version: str, out_dir: Path, int8: bool = True,
             flip_average: bool = False, name: str = "audience-mt", calibration: int = 512,
             use: dict[int, str] | None = None, quantized: bool = False) -> Path:
    """Merge the members' float32 networks into ``<name>-<version>-int8.onnx``, quantized on
    ``calibration`` training faces of each dataset (``<name>-<version>.onnx`` in float32 where
    ``int8`` is false), with a manifest that names each member and the heads it is used for.
    ``use`` narrows a member (index from 0) to some heads. ``quantized``: merge the members'
    int8 graphs as they are, quantized alike (see ``compose_quantized``). Returns the manifest
    path."""
    from audience.inference.analyzer import load_manifest

    if len(members) < 2:
        raise InputError("an ensemble needs at least two member manifests")
    loaded = [load_manifest(p, float32=not quantized) for p in members]  # each hash checked
    uses = [member_uses(m.get("training", {}), (use or {}).get(i))
            for i, (m, _) in enumerate(loaded)]
    base: dict[str, Any] = copy.deepcopy(loaded[0][0])
    for path, (manifest, _) in zip(members[1:], loaded[1:], strict=True):
        if manifest["input"] != base["input"] or manifest["outputs"] != base["outputs"]:
            raise InputError(f"{path} takes another input or gives other outputs than "
                             f"{members[0]}: only models of one layout can be averaged")
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = [w for _, w in loaded]
    manifest = {k: v for k, v in base.items()
                if k not in ("float32", "quantization", "flip_average", "metrics", "ensemble")}
    if quantized:
        onnx_path = out_dir / f"{name}-{version}-int8.onnx"
        merge(sources, onnx_path, uses)
        manifest.update(quantization=compose_quantized(members, [m for m, _ in loaded]),
                        flip_average=flip_average)
    elif int8:
        # Only the int8 graph is kept: the merged float32 one serves nothing (warm starts
        # refuse an ensemble) and ``--float32`` rebuilds it exactly from the members.
        from audience.models.quantize import (
            calibration_faces,
            quantization_entry,
            quantize_onnx,
            training_sources,
        )

        onnx_path = out_dir / f"{name}-{version}-int8.onnx"
        faces = calibration_faces(*training_sources(base.get("training", {})), n=calibration,
                                  size=int(base["input"]["size"]),
                                  channels=int(base["input"].get("channels", 1)))
        with tempfile.TemporaryDirectory() as tmp:
            merged = Path(tmp) / "merged.onnx"
            merge(sources, merged, uses)
            quantize_onnx(merged, onnx_path, faces)
        manifest.update(quantization=quantization_entry(calibration), flip_average=flip_average)
    else:
        onnx_path = out_dir / f"{name}-{version}.onnx"
        merge(sources, onnx_path, uses)
    manifest.update(
        name=name, version=version, file=onnx_path.name, sha256=sha256(onnx_path),
        parameters=sum(used_parameters(m, u) for (m, _), u in zip(loaded, uses, strict=True)),
        metrics={}, ensemble=[member_entry(m, w, u) for (m, w), u in zip(loaded, uses,
                                                                         strict=True)])
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    log.info("merged %s into %s (%.1f MB)", ", ".join(f"{m['name']}-{m['version']}"
                                                      for m, _ in loaded),
             onnx_path.name, onnx_path.stat().st_size / 1e6)
    return path


def compose_quantized(paths: list[Path], manifests: list[dict]) -> dict:
    """The quantization record of an ensemble merged from int8 members. Static QDQ quantization
    gives each tensor its own range from the calibration faces, so members quantized alike (the
    same method and calibration faces) merge into the graph that quantizing their float32
    merge gives, up to the calibration of the shared input. This lets a member whose float32
    network is not kept (a shipped ensemble's specialist) serve in a new ensemble unchanged."""
    first: dict | None = None
    for path, manifest in zip(paths, manifests, strict=True):
        entry = manifest.get("quantization")
        if entry is None:
            raise InputError(f"{path} is not an int8 model: --quantized merges int8 members "
                             "only (drop --quantized to quantize float32 members together)")
        first = first or entry
        if (entry["method"], entry["calibration"]) != (first["method"], first["calibration"]):
            raise InputError(f"{path} was quantized otherwise ({entry['calibration']}) than "
                             f"{paths[0]} ({first['calibration']}): re-quantize it alike "
                             "(python -m audience.models.quantize)")
    assert first is not None  # ensemble() refuses fewer than two members
    return {"method": first["method"], "calibration": first["calibration"],
            "composed": "the members' int8 graphs merged as they are"}


def member_entry(manifest: dict, weights: Path, uses: tuple[str, ...]) -> dict[str, Any]:
    """The ensemble manifest's record of one member; a member that is itself an ensemble keeps
    its own members' records."""
    entry: dict[str, Any] = {
        "name": manifest["name"], "version": manifest["version"], "file": weights.name,
        "sha256": sha256(weights), "used_for": list(uses),
        "parameters": used_parameters(manifest, uses), "training": manifest.get("training", {})}
    if manifest.get("ensemble"):
        entry["ensemble"] = manifest["ensemble"]
    return entry


def main(
    members: Annotated[list[Path], typer.Argument(help="manifests of the models to average "
                                                       "(two or more; an int8 manifest gives "
                                                       "its float32 network)")],
    version: Annotated[str, typer.Option(help="version of the merged model")],
    out: Annotated[Path, typer.Option(help="folder for the merged ONNX file and manifest")],
    float32: Annotated[bool, typer.Option("--float32", help="skip the int8 quantization")] = False,
    flip: Annotated[bool, typer.Option("--flip", help="also average each face with its "
                                                      "mirror (flip_average)")] = False,
    quantized: Annotated[bool, typer.Option(
        "--quantized", help="merge the members' int8 graphs as they are (each quantized alike) "
        "instead of quantizing their float32 networks together; for a member whose float32 "
        "network is not kept, such as a shipped ensemble")] = False,
    use: Annotated[list[str] | None, typer.Option(
        help="MEMBER:HEADS (members counted from 1): use that member for these heads only, "
        "e.g. --use 2:age,gender,ethnicity; repeatable. By default a member counts for the "
        "heads it trained (audience train --tasks).")] = None,
) -> None:
    """Average exported models in one ONNX graph, served as one model: each head is the mean
    over the members used for it."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        print(ensemble(members, version, out, int8=not float32, flip_average=flip,
                       use=parse_use(use or [], len(members)), quantized=quantized))
    except InputError as exc:  # one line and exit 2, as every command
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    typer.run(main)
