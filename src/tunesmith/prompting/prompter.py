"""A prompting configuration, and the conversations it gives each input.

    PromptConfig(shots=5, selection="similar", instruction="labels", calibrate=True)
      -> system: "Classify the text into exactly one of these labels: ... Answer with the label only."
         user/assistant x 5: the five training examples nearest to this input
         user: the input
      (and, for label scoring, each label's score less its score on a content-free input)

Instructions (`instruction`):
    own      the data set's own (task.json's `system`)
    labels   one that lists the labels or entity types (what `data prepare` writes by default)
    none     no system message at all
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import get_args

from tunesmith.config import Instruction, Selection
from tunesmith.data.examples import Example, Message
from tunesmith.data.taskfile import TaskSpec
from tunesmith.data.tasks import task_kind
from tunesmith.prompting.fewshot import prompt_with_shots, select_shots
from tunesmith.prompting.similar import NearestShots

SELECTIONS: tuple[Selection, ...] = get_args(Selection)
INSTRUCTIONS: tuple[Instruction, ...] = get_args(Instruction)


@dataclass(frozen=True)
class PromptConfig:
    shots: int = 0
    """Examples from the training split shown before the input."""
    selection: Selection = "stratified"
    """`stratified`: one fixed, seeded set, every label in turn; `similar`: per input, the
    training examples nearest to it (TF-IDF)."""
    instruction: Instruction = "own"
    calibrate: bool = False
    """Label scoring only: divide out the label prior the prompt gives a content-free input
    (Zhao et al. 2021, "Calibrate Before Use")."""
    seed: int = 0

    def describe(self) -> str:
        """`5 similar shots, instruction: labels, calibrated`."""
        parts = [f"{self.shots} {self.selection} shot{'s' if self.shots != 1 else ''}"
                 if self.shots else "0 shots", f"instruction: {self.instruction}"]
        if self.calibrate:
            parts.append("calibrated")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return asdict(self)


def instruction_text(kind: Instruction, spec: TaskSpec) -> str | None:
    """The system message for an instruction kind; None for none."""
    if kind == "none":
        return None
    task = task_kind(spec.task)
    if kind == "labels" and not task.open_ended:
        return task.default_system(spec.labels)
    return spec.system or None


class Prompter:
    """Builds the conversation for each input under a `PromptConfig`.

    Args:
        spec: the task (its instruction and labels).
        train: where shots come from.
        config: the configuration.
    """

    CONTENT_FREE = ("N/A", "", "[MASK]")
    """Inputs that carry no content (Zhao et al. 2021): their label scores are the prompt's
    own bias toward each label."""

    def __init__(self, spec: TaskSpec, train: list[Example], config: PromptConfig) -> None:
        self.spec, self.config = spec, config
        self.system = instruction_text(config.instruction, spec)
        self.fixed = (select_shots(train, config.shots, spec.task, seed=config.seed)
                      if config.selection == "stratified" else None)
        self.nearest = (NearestShots(train) if config.selection == "similar" and config.shots
                        else None)

    @property
    def shared_shots(self) -> bool:
        """True when every input gets the same shots."""
        return self.nearest is None

    def shots(self, example: Example) -> list[Example]:
        if self.nearest is not None:
            return self.nearest.nearest(example, self.config.shots)
        return self.fixed or []

    def conversation(self, example: Example) -> list[dict]:
        return prompt_with_shots(example, self.shots(example), self.system)

    def conversations(self, examples: list[Example]) -> list[list[dict]]:
        return [self.conversation(e) for e in examples]

    def content_free(self, example: Example | None = None) -> list[list[dict]]:
        """Conversations with this prompt's instruction and shots (those of `example` when
        shots are chosen per input) around a content-free input: one per content-free text."""
        shots = self.shots(example) if example is not None else self.fixed or []
        out = []
        for text in self.CONTENT_FREE if example is None else self.CONTENT_FREE[:1]:
            convo = prompt_with_shots(_bare(text), shots, self.system)
            out.append(convo)
        return out


def _bare(text: str) -> Example:
    return Example(0, [Message("user", text), Message("assistant", "")])
