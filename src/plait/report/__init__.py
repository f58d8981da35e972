"""The run report: one self-contained HTML page (`report.html`) of how a run went and what it predicts; and `compare`,
several runs side by side."""
