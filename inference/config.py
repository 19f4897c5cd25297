"""Inference configuration: which heads run (the attribute policy) and how."""

from __future__ import annotations

from pydantic import Field

from audience.core.config import Strict


class AttributePolicy(Strict):
    """Which attributes are inferred. Ethnicity is off unless a deployment switches it on."""

    emotion: bool = Field(True, description="Facial expression, 7 FER-2013 classes.")
    age: bool = Field(True, description="Apparent age in years and an age bracket.")
    gender: bool = Field(True, description="Apparent gender (male/female) with a confidence.")
    ethnicity: bool = Field(
        False, description="Apparent ethnicity (5 UTKFace classes). OFF by default: prohibited in "
        "the EU (AI Act Art. 5(1)(g)) and special-category data under GDPR Art. 9. Enable only "
        "where lawful, with a documented legal basis.")

    @classmethod
    def from_names(cls, names: str | list[str]) -> AttributePolicy:
        """``"emotion,age"`` -> a policy with exactly those heads on."""
        items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names)]
        items = [n for n in items if n]
        unknown = sorted(set(items) - set(cls.model_fields))
        if unknown:
            raise ValueError(f"unknown attribute(s) {', '.join(unknown)}: "
                             f"choose from {', '.join(cls.model_fields)}")
        return cls(**{name: name in items for name in cls.model_fields})

    def enabled(self) -> list[str]:
        return [name for name in type(self).model_fields if getattr(self, name)]


class AnalyzerConfig(Strict):
    attributes: AttributePolicy = Field(
        default_factory=AttributePolicy, description="Heads to run (the attribute policy).")
    weights: str | None = Field(
        None, description="Path to a model manifest (JSON); default: the shipped model.")
    threads: int = Field(
        0, ge=0, description="ONNX Runtime intra-op threads (0: one per core).")
    batch_size: int = Field(64, ge=1, le=1024, description="Faces per inference batch.")
    flip_average: bool | None = Field(
        None, description="Also label the mirrored face and average the two (better on the "
        "validation splits; twice the network work). Default: what the model's manifest says "
        "(the shipped 2.4.0: no; the model card says why).")
    crops_per_visit: int = Field(
        5, ge=1, le=50, description="Best crops analysed per track; their results are averaged.")
    # 13 where the manifest sets no age: gender on children is the model's known gap.
    gender_min_age: float | None = Field(
        None, ge=0, le=100, description="No gender for a face or visitor whose estimated age is "
        "under this many years: reported as unknown. Default: the age the model's manifest "
        "sets (`gender_min_age`, chosen where its gender accuracy in the wild falls; the model "
        "card gives the figures), else 13; 0 turns the rule off.")
