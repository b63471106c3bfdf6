"""ConvTranspose nodes the spec forbids: a minimal example of every rule (harness.core.convtranspose.RULES),
and the mutations that make a valid random configuration break one rule (the fuzzer's invalid space).

An engine that runs an invalid node and returns a tensor has a defect (it should refuse the model); each such
(engine, rule) is a ledger entry with a reproducer (harness/checking/known.py). `make conformance` runs the
examples natively on every engine (the table "Invalid nodes"), `make fuzz` draws the mutations at random.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from harness.audit.equivalence import CTConfig, random_config
from harness.core.convtranspose import RULES, rule_broken

_X2, _W2 = (1, 2, 3, 3), (2, 1, 2, 2)  # the base of the 2-D examples: C = 2, M = 1, kernel 2x2


def _ex(name: str, attrs: dict, x=_X2, w=_W2, bias: bool = False, bias_len: int | None = None) -> CTConfig:
    return CTConfig(name, tuple(x), tuple(w), attrs, bias or bias_len is not None, False, bias_len)


# rule -> minimal examples (each breaks that rule and no earlier one)
EXAMPLES: dict[str, tuple[CTConfig, ...]] = {
    "rank": (_ex("rank_mismatch", {}, x=(1, 2, 3, 3), w=(2, 1, 2)),),
    "group": (
        _ex("group_zero", {"group": 0}),
        _ex("group_not_dividing_c", {"group": 2}, x=(1, 3, 3, 3), w=(3, 1, 2, 2)),
        _ex("weight_channels_not_c", {}, x=(1, 2, 3, 3), w=(3, 1, 2, 2)),
    ),
    "kernel_shape": (
        _ex("kernel_shape_of_w_rank", {"kernel_shape": [2, 1, 2, 2]}),
        _ex("kernel_shape_not_w", {"kernel_shape": [3, 3]}),
    ),
    "strides": (
        _ex("strides_zero", {"strides": [0, 0]}),
        _ex("strides_negative", {"strides": [-1, 2]}),
        _ex("strides_length", {"strides": [2]}),
    ),
    "dilations": (
        _ex("dilations_zero", {"dilations": [0, 0]}),
        _ex("dilations_negative", {"dilations": [1, -1]}),
    ),
    "pads": (_ex("pads_negative", {"pads": [-1, 0, 0, 0]}), _ex("pads_length", {"pads": [1, 1]})),
    "output_padding": (
        _ex("output_padding_ge_stride_and_dilation", {"strides": [2, 2], "output_padding": [2, 0]}),
        _ex("output_padding_negative", {"strides": [2, 2], "output_padding": [-1, 0]}),
        _ex("output_padding_length", {"strides": [2, 2], "output_padding": [1]}),
    ),
    "output_shape": (_ex("output_shape_length", {"strides": [2, 2], "output_shape": [6]}),),
    "auto_pad": (_ex("auto_pad_unknown", {"auto_pad": "SAME"}),),
    "bias": (
        _ex("bias_longer_than_m", {}, x=(1, 1, 1, 3), w=(1, 1, 1, 5), bias_len=2),
        _ex("bias_shorter_than_m", {}, x=(1, 1, 3, 3), w=(1, 3, 2, 2), bias_len=2),
    ),
    "output_size": (
        _ex("output_size_zero", {"pads": [2, 0, 2, 0]}),
        _ex("output_size_negative", {"pads": [3, 0, 2, 0]}),
    ),
}


def examples() -> list[tuple[str, CTConfig]]:
    """(rule, example) for every rule, in RULES' order."""
    return [(rule, cfg) for rule in RULES for cfg in EXAMPLES[rule]]


# ------------------------------------------------------------------------------------- the fuzzer's mutations


def mutate(rng: np.random.Generator, base: CTConfig, rule: str) -> CTConfig:
    """`base` (valid) changed so that it breaks `rule`; may break an earlier rule too (the caller checks)."""
    a = {k: v for k, v in base.attrs.items()}
    nd, ax = base.nd, int(rng.integers(0, base.nd))
    c, g = base.w_shape[0], int(a.get("group", 1))
    if rule == "rank":
        return replace(base, w_shape=base.w_shape + (1,), attrs={k: v for k, v in a.items() if k != "kernel_shape"})
    if rule == "group":
        choice = rng.integers(0, 3)
        if choice == 0:
            a["group"] = 0
        elif choice == 1:
            a["group"] = c + 1  # more groups than channels: does not divide C
        else:  # the weight's first dimension is not C
            return replace(base, w_shape=(c + g,) + base.w_shape[1:])
        return replace(base, attrs=a)
    if rule == "kernel_shape":
        k = list(base.w_shape[2:])
        if rng.random() < 0.5:
            a["kernel_shape"] = list(base.w_shape)  # as many values as W has dimensions (the case)
        else:
            k[ax] += 1
            a["kernel_shape"] = k
        return replace(base, attrs=a)
    if rule in ("strides", "dilations"):
        v = list(a.get(rule) or [1] * nd)
        if rng.random() < 0.25:
            v = v + [1]  # one value too many
        else:
            v[ax] = int(rng.choice([0, -1]))
        a[rule] = v
        return replace(base, attrs=a)
    if rule == "pads":
        for k in ("auto_pad", "output_shape"):
            a.pop(k, None)
        pads = list(a.get("pads") or [0] * (2 * nd))
        if rng.random() < 0.25:
            pads = pads[:nd]
        else:
            pads[int(rng.integers(0, 2 * nd))] = -int(rng.integers(1, 3))
        a["pads"] = pads
        return replace(base, attrs=a)
    if rule == "output_padding":
        s, d = list(a.get("strides") or [1] * nd), list(a.get("dilations") or [1] * nd)
        op = list(a.get("output_padding") or [0] * nd)
        r = rng.integers(0, 3)
        if r == 0:
            op[ax] = max(s[ax], d[ax]) + int(rng.integers(0, 2))
        elif r == 1:
            op[ax] = -1
        else:
            op = op + [0]
        a["output_padding"] = op
        return replace(base, attrs=a)
    if rule == "output_shape":
        full = [2 * i for i in base.x_shape[2:]]
        a["output_shape"] = full + [full[0]] if rng.random() < 0.5 else full[:ax] + [0] + full[ax + 1 :]
        a.pop("auto_pad", None)
        return replace(base, attrs=a)
    if rule == "auto_pad":
        a["auto_pad"] = str(rng.choice(["SAME", "same_upper", "EXPLICIT"]))
        return replace(base, attrs=a)
    if rule == "bias":
        m = base.w_shape[1] * g
        return replace(base, bias=True, bias_len=m + 1 if m == 1 or rng.random() < 0.5 else m - 1)
    if rule == "output_size":
        for k in ("auto_pad", "output_shape", "output_padding"):
            a.pop(k, None)
        s, d = list(a.get("strides") or [1] * nd), list(a.get("dilations") or [1] * nd)
        full = [si * (i - 1) + di * (ki - 1) + 1 for si, i, di, ki in zip(s, base.x_shape[2:], d, base.w_shape[2:])]
        pads = [0] * (2 * nd)
        pads[ax] = full[ax] // 2 + 1
        pads[ax + nd] = full[ax] - pads[ax] + int(rng.integers(0, 3))  # output size 0, -1 or -2
        a["pads"] = pads
        return replace(base, attrs=a)
    raise KeyError(rule)


def random_invalid(rng: np.random.Generator, name: str, rule: str | None = None) -> tuple[CTConfig, str]:
    """A random configuration that breaks `rule` (drawn uniformly from RULES when None) and the rule it breaks
    first (RULES' order: a mutation that also breaks an earlier rule is drawn again)."""
    rule = rule or str(rng.choice(list(RULES)))
    while True:
        cfg = mutate(rng, random_config(rng, name), rule)
        if rule_broken(cfg.attrs, cfg.x_shape, cfg.w_shape, cfg.b_shape) == rule:
            return cfg, rule
