"""Tiny ONNX models with the production I/O signature, built in code for tests.

Never a default model for the service: these exist only so the plumbing (loading,
batching, scoring) can be checked without the trained detector.

Kinds:
    energy: ``logit = gain * ln(mean(x^2) + eps) - gain * ln(ref_rms^2)``, so audio whose
        RMS is above ``ref_rms`` scores above 0.5 ("synthetic") and quieter audio below.
    constant: ``logit = value`` for every row, whatever the audio.
    peak: ``logit = gain * (max(|x|) - ref_rms)``; handy to tell windows apart by level.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto, helper

OPSET = 17  # ReduceMean/ReduceMax take `axes` as an attribute up to opset 17
IR_VERSION = 8  # the IR version that goes with opset 17; every onnxruntime reads it
EPS = 1e-10


def _const(name: str, value: float) -> onnx.NodeProto:
    tensor = helper.make_tensor(name + "_t", TensorProto.FLOAT, [], [value])
    return helper.make_node("Constant", [], [name], value=tensor)


def _energy_nodes(out: str, gain: float, ref_rms: float) -> list[onnx.NodeProto]:
    bias = -gain * math.log(ref_rms * ref_rms)
    return [
        helper.make_node("Mul", ["x", "x"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["power"], axes=[1], keepdims=0),
        _const("eps", EPS),
        helper.make_node("Add", ["power", "eps"], ["power_eps"]),
        helper.make_node("Log", ["power_eps"], ["log_power"]),
        _const("gain", gain),
        helper.make_node("Mul", ["log_power", "gain"], ["scaled"]),
        _const("bias", bias),
        helper.make_node("Add", ["scaled", "bias"], [out]),
    ]


def _constant_nodes(out: str, value: float) -> list[onnx.NodeProto]:
    # 0 * mean(x) + value keeps the batch dimension from the input.
    return [
        helper.make_node("ReduceMean", ["x"], ["total"], axes=[1], keepdims=0),
        _const("zero", 0.0),
        helper.make_node("Mul", ["total", "zero"], ["zeros"]),
        _const("value", value),
        helper.make_node("Add", ["zeros", "value"], [out]),
    ]


def _peak_nodes(out: str, gain: float, ref_rms: float) -> list[onnx.NodeProto]:
    return [
        helper.make_node("Abs", ["x"], ["absx"]),
        helper.make_node("ReduceMax", ["absx"], ["peak"], axes=[1], keepdims=0),
        _const("ref", ref_rms),
        helper.make_node("Sub", ["peak", "ref"], ["diff"]),
        _const("gain", gain),
        helper.make_node("Mul", ["diff", "gain"], [out]),
    ]


def build_graph(
    *,
    kind: str = "energy",
    output_kind: str = "logit",
    input_name: str = "waveform",
    output_name: str = "logit",
    gain: float = 1.0,
    ref_rms: float = 0.1,
    value: float = 0.0,
) -> onnx.ModelProto:
    """Build the ONNX graph of a test model (input float32 [batch, samples], output [batch])."""
    raw = "raw" if output_kind == "probability" else output_name
    if kind == "energy":
        nodes = _energy_nodes(raw, gain, ref_rms)
    elif kind == "constant":
        nodes = _constant_nodes(raw, value)
    elif kind == "peak":
        nodes = _peak_nodes(raw, gain, ref_rms)
    else:
        raise ValueError(f"kind must be energy, constant or peak, not {kind!r}")
    if output_kind == "probability":
        nodes.append(helper.make_node("Sigmoid", [raw], [output_name]))
    nodes.insert(0, helper.make_node("Identity", [input_name], ["x"]))
    graph = helper.make_graph(
        nodes,
        f"test-{kind}",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", "samples"])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["batch"])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="clonewatch-tests"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def write_test_model(
    directory: Path,
    *,
    name: str = "test-model",
    window_s: float = 1.0,
    hop_s: float = 0.5,
    kind: str = "energy",
    output_kind: str = "logit",
    threshold: float = 0.5,
    sample_rate: int = 16000,
    gain: float = 1.0,
    ref_rms: float = 0.1,
    value: float = 0.0,
    graph_input: str = "waveform",
    graph_output: str = "logit",
    manifest_overrides: dict[str, Any] | None = None,
) -> Path:
    """Write `NAME.onnx` and its `NAME.json` manifest into `directory`; return the .onnx path.

    `graph_input`/`graph_output` name the graph's tensors; the manifest always says
    "waveform"/"logit", so a different name makes a deliberately mismatched model.
    `manifest_overrides` replaces (or, with value None, removes) manifest keys.
    """
    directory.mkdir(parents=True, exist_ok=True)
    model = build_graph(
        kind=kind,
        output_kind=output_kind,
        input_name=graph_input,
        output_name=graph_output,
        gain=gain,
        ref_rms=ref_rms,
        value=value,
    )
    onnx_path = directory / f"{name}.onnx"
    onnx.save(model, str(onnx_path))
    manifest: dict[str, Any] = {
        "name": name,
        "version": "0.0-test",
        "sample_rate": sample_rate,
        "window_s": window_s,
        "hop_s": hop_s,
        "input": "waveform",
        "output": "logit",
        "output_kind": output_kind,
        "threshold": threshold,
        "thresholds": {"eer": threshold, "fpr_1pct": min(1.0, threshold + 0.3)},
        "trained_on": f"nothing: a {kind} test graph",
        "metrics": {},
    }
    for key, val in (manifest_overrides or {}).items():
        if val is None:
            manifest.pop(key, None)
        else:
            manifest[key] = val
    (directory / f"{name}.json").write_text(json.dumps(manifest, indent=2))
    return onnx_path
