"""What each number in a metrics table means: its title, which way is better, its paper, one sentence.

The Evaluate page, the command line and the JSON report all read ``COLUMNS``, so that
every table says whether higher or lower is better (users of other tools could not tell).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    higher_is_better: bool
    metric: str  # the metric of ``interpret.metrics.evaluate`` that fills it
    paper: str
    sentence: str  # what a good value (or passing) means, for a person

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    @property
    def heading(self) -> str:
        return f"{self.title} ({'↑' if self.higher_is_better else '↓'} {self.direction})"


PETSIUK = "Petsiuk et al. 2018 (RISE)"
CHATTOPADHAY = "Chattopadhay et al. 2018 (Grad-CAM++)"
BHATT = "Bhatt et al. 2020"
ADEBAYO = "Adebayo et al. 2018"

COLUMNS: dict[str, Column] = {
    c.key: c
    for c in (
        Column(
            "deletion_auc",
            "Deletion AUC",
            False,
            "deletion",
            PETSIUK,
            "Deletion: the pixels the map ranks highest are blacked out first; if the map is right the class "
            "score collapses early, so a small area under the curve is good.",
        ),
        Column(
            "insertion_auc",
            "Insertion AUC",
            True,
            "insertion",
            PETSIUK,
            "Insertion: starting from a blurred picture, the top-ranked pixels are put back first; if the map is "
            "right the class score comes back early, so a large area under the curve is good.",
        ),
        Column(
            "average_drop",
            "Average Drop %",
            False,
            "average_drop",
            CHATTOPADHAY,
            "Average Drop: the picture is shown through the map (dark where the map is low); a faithful map "
            "keeps what the model needs, so the confidence drops little.",
        ),
        Column(
            "increase_in_confidence",
            "Increase in Confidence %",
            True,
            "average_drop",
            CHATTOPADHAY,
            "Increase in Confidence: how often the picture seen through the map is even more convincing than "
            "the whole picture.",
        ),
        Column(
            "mufidelity",
            "MuFidelity",
            True,
            "mufidelity",
            BHATT,
            "MuFidelity: random patches are removed; a faithful map gives more weight to the patches whose "
            "removal costs the most score (rank correlation: 1 perfect, 0 unrelated, -1 reversed).",
        ),
        Column(
            "sanity_spearman_abs",
            "|Spearman| after randomising",
            False,
            "sanity",
            ADEBAYO,
            "Sanity check: a map that explains the model must change when the model's weights are randomised; "
            "it passes when its rank correlation with the original map (absolute values) falls below 0.5.",
        ),
        Column("sanity_spearman", "Spearman after randomising", False, "sanity", ADEBAYO, "Signed rank correlation."),
        Column("sanity_ssim", "SSIM after randomising", False, "sanity", ADEBAYO, "Structural similarity."),
        Column(
            "sanity_hog", "HOG similarity after randomising", False, "sanity", ADEBAYO, "Edge-histogram similarity."
        ),
    )
}

METRICS = ("deletion", "insertion", "average_drop", "mufidelity", "sanity")
DEFAULT_METRICS = ("deletion", "insertion", "average_drop", "mufidelity")


def columns_for(metrics) -> list[str]:
    """The table's columns for these metrics, in ``COLUMNS`` order."""
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ValueError(f"Unknown metric {', '.join(sorted(unknown))}; choose from {', '.join(METRICS)}.")
    return [k for k, c in COLUMNS.items() if c.metric in metrics]
