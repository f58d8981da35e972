"""Modality ablation: what each input contributes. The trained model is evaluated on a split with every input, with
each input left out in turn, and (with three inputs or more) with one input kept alone. A left-out input takes the
missing-value path, as an empty cell does (its learned 'missing' vector), not zeros, so the model sees what it was
trained to see when a modality is absent."""

from __future__ import annotations

from dataclasses import dataclass

from plait.console import progress_bar


@dataclass
class Ablation:
    split: str
    main_metrics: dict[str, str]  # output → the metric key compared, e.g. "label.accuracy"
    higher_is_better: dict[str, bool]  # output → whether a higher main metric is better
    dropped: dict[str, list[str]]  # variant ("fused", "without photo", "only note") → the inputs left out
    metrics: dict[str, dict[str, float]]  # variant → every metric of the split

    def change(self, variant: str, output: str) -> float | None:
        """The variant's main metric minus the fused model's (None when the output has no such metric)."""
        key = self.main_metrics[output]
        value, fused = self.metrics[variant].get(key), self.metrics["fused"].get(key)
        return None if value is None or fused is None else value - fused

    def harm(self, variant: str, output: str) -> float | None:
        """How much worse the variant does than the fused model on the output's main metric (> 0: worse)."""
        change = self.change(variant, output)
        return None if change is None else (-change if self.higher_is_better[output] else change)

    def to_json(self) -> dict:
        return {"split": self.split, "main_metrics": self.main_metrics, "higher_is_better": self.higher_is_better,
                "variants": {name: {"dropped": self.dropped[name], "metrics": self.metrics[name]} for name in self.metrics}}

    @classmethod
    def from_json(cls, value: dict) -> "Ablation":
        variants = value["variants"]
        return cls(value["split"], value["main_metrics"], value["higher_is_better"],
                   {name: v["dropped"] for name, v in variants.items()}, {name: v["metrics"] for name, v in variants.items()})

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Headers and rows for printing: each variant's main metric per output, with its change from fused."""
        headers = ["inputs", *self.main_metrics.values()]
        rows = []
        for variant, metrics in self.metrics.items():
            cells = [variant]
            for output, key in self.main_metrics.items():
                value, change = metrics.get(key), self.change(variant, output)
                cells.append("" if value is None else f"{value:.4f}" if variant == "fused" else f"{value:.4f} ({change:+.4f})")
            rows.append(cells)
        return headers, rows


def variants(inputs: list[str]) -> dict[str, frozenset[str]]:
    """Variant name → the inputs it leaves out. With two inputs, keeping one alone is leaving the other out."""
    chosen = {"fused": frozenset()}
    if len(inputs) < 2:
        return chosen
    chosen.update({f"without {name}": frozenset({name}) for name in inputs})
    if len(inputs) > 2:
        chosen.update({f"only {name}": frozenset(inputs) - {name} for name in inputs})
    return chosen


def ablate(evaluate, inputs: list[str], tasks: dict, split: str, fused: dict[str, float] | None = None) -> Ablation:
    """`evaluate(drop)` → the split's metrics with the inputs in `drop` left out. `fused`: the metrics with every
    input, when the caller already has them."""
    chosen = variants(inputs)
    metrics = {}
    for name, drop in progress_bar(list(chosen.items()), f"ablation ({split})", total=len(chosen)):
        metrics[name] = fused if (name == "fused" and fused is not None) else evaluate(drop)
    main = {output: f"{output}.{task.main_metric}" for output, task in tasks.items()}
    higher = {output: task.metric_mode(task.main_metric) == "max" for output, task in tasks.items()}
    return Ablation(split, main, higher, {name: sorted(drop) for name, drop in chosen.items()}, metrics)
