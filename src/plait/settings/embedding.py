"""The keys of the `embedding` output: loss and miner by name (the task is `plait/tasks/embedding.py`), with no
torch import."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from plait.schema import OutputBase, Section


LOSSES = {
    "triplet_margin": "TripletMarginLoss",
    "contrastive": "ContrastiveLoss",
    "multi_similarity": "MultiSimilarityLoss",
    "arcface": "ArcFaceLoss",
    "ntxent": "NTXentLoss",
}


MINERS = {"none": None, "batch_hard": "BatchHardMiner", "multi_similarity": "MultiSimilarityMiner"}


class MetricLossSettings(Section):
    name: Literal["triplet_margin", "contrastive", "multi_similarity", "arcface", "ntxent"] = Field(
        "multi_similarity",
        description="pytorch-metric-learning loss: `triplet_margin` (TripletMarginLoss), `contrastive` (ContrastiveLoss), "
        "`multi_similarity` (MultiSimilarityLoss), `arcface` (ArcFaceLoss: a learned weight per class, trained and "
        "saved with the model) or `ntxent` (NTXentLoss, the supervised form: same-class rows are positives).",
    )
    options: dict[str, float | int | bool | str] = Field(
        {}, description="Keyword arguments of the loss's class, e.g. `{margin: 0.2}` for `triplet_margin`, "
        "`{pos_margin: 0, neg_margin: 1}` for `contrastive`, `{alpha: 2, beta: 50, base: 0.5}` for `multi_similarity`, "
        "`{margin: 28.6, scale: 64}` for `arcface`, `{temperature: 0.07}` for `ntxent`. Default: the library's.",
    )


class MinerSettings(Section):
    name: Literal["none", "batch_hard", "multi_similarity"] = Field(
        "none", description="Which pairs or triplets of a batch the loss sees: `none` (all of them), `batch_hard` "
        "(BatchHardMiner: each row's hardest positive and hardest negative) or `multi_similarity` (MultiSimilarityMiner: "
        "the pairs that break the similarity ordering by more than `epsilon`).",
    )
    options: dict[str, float | int | bool | str] = Field({}, description="Keyword arguments of the miner's class, e.g. `{epsilon: 0.1}`.")


class EmbeddingOutput(OutputBase):
    type: Literal["embedding"] = "embedding"
    column: str = Field(description="Column holding each row's class: rows of one class should embed close together.")
    dim: PositiveInt = Field(128, description="Size of the embedding.")
    hidden: list[int] = Field([], description="Widths of MLP layers between the fused vector and the projection (empty: a single Linear).")
    loss: MetricLossSettings = Field(default_factory=MetricLossSettings, description="The metric-learning loss.")
    miner: MinerSettings = Field(default_factory=MinerSettings, description="The miner that picks the loss's pairs or triplets.")
    recall_at: list[PositiveInt] = Field([1, 5, 10], min_length=1, description="The k of each Recall@k reported (the share of queries with a same-class row among their k nearest).")
    gallery: Literal["train"] | None = Field(
        None, description="`train`: after training, also search the validation and test rows among the training rows "
        "(the gallery) and report `NAME.vs_train.METRIC`. null: only leave-one-out search within each split.",
    )
    map: Literal["umap", "tsne", "pca", "none"] = Field(
        "umap", description="Map of the test (else validation) embeddings coloured by class, drawn after training as "
        "`plots/embeddings_SPLIT.png`: `umap` (umap-learn; its first call compiles for 15-20 s, after the training loop), "
        "`tsne` (scikit-learn), `pca`, or `none`.",
    )
