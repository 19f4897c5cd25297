"""``FaceResult``: one face found in an image, the one shape the Python API returns,
`audience analyze --json` prints and the annotators draw. No image data: a box and labels."""

from __future__ import annotations

from dataclasses import dataclass, field

from audience.core.visit import FaceAttributes

#: The keys of ``FaceResult.to_dict()``, in order: the same for the API and the CLI's JSON.
#: A head that did not run (ethnicity unless enabled, or one left out of ``attributes``) has
#: its keys present with None.
KEYS = ("source", "face", "box", "score", "emotion", "emotion_scores", "age", "age_bracket",
        "gender", "gender_score", "ethnicity", "ethnicity_scores")


@dataclass(frozen=True, slots=True)
class FaceResult:
    """Where a face is (image pixels) and what the analyzer says about it."""

    box: list[float]  #: x1, y1, x2, y2 in image pixels
    score: float  #: detector confidence, 0..1 (1.0 for an ``--aligned`` crop)
    attributes: FaceAttributes = field(default_factory=FaceAttributes)
    source: str | None = None  #: the image file; None for an array
    face: int = 0  #: index in its image, largest face first

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])

    def to_dict(self) -> dict:
        """JSON-ready: the keys ``KEYS``, in that order."""
        return {"source": self.source, "face": self.face, "box": list(self.box),
                "score": self.score, **self.attributes.to_dict()}
