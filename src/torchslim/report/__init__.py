"""Run reports: dataclasses (JSON is canonical), Markdown and PNG plot renderings."""

from torchslim.report.schema import SCHEMA_VERSION, LatencyPoint, RunReport, Snapshot, StepReport

__all__ = ["SCHEMA_VERSION", "LatencyPoint", "RunReport", "Snapshot", "StepReport"]
