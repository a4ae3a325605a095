"""Spark-TTS's token vocabulary, prompts and output grammar.

The official tokenizer is Qwen2.5's plus 13,493 added tokens, appended in the order of the
reference ``extend_tokenizer`` (globals, semantics, pitch values, …, task/structure tokens);
:data:`SPARK_ADDED_TOKENS` reproduces that order so random test tokenizers match the release.
Ids are always looked up by string (:class:`SparkVocab`): a tiny test vocabulary and the real one
differ.

Prompt layouts (reference ``SparkTTS.process_prompt*``):
- create:  ``<|task_controllable_tts|><|start_content|>TEXT<|end_content|><|start_style_label|>
  <|gender_G|><|pitch_label_P|><|speed_label_S|><|end_style_label|>`` → the model writes
  ``<|start_acoustic_token|><|pitch_value_N|><|speed_value_M|><|end_acoustic_token|>
  <|start_global_token|>`` 32 globals ``<|end_global_token|><|start_semantic_token|>`` semantics
  ``<|im_end|>``.
- frozen (a created voice reused): the create prompt plus the stored acoustic and global span, so
  the model continues with ``<|start_semantic_token|>`` and semantics in the same timbre.
- clone:   ``<|task_tts|><|start_content|>[REF_TEXT]TEXT<|end_content|><|start_global_token|>``
  ref globals ``<|end_global_token|>`` [``<|start_semantic_token|>`` ref semantics, when the
  transcript is known].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from fasttts.backends.base import Ranges, TokenConstraint, merge_ranges
from fasttts.errors import ModelLoadError

NUM_GLOBAL = 32
GLOBAL_CODEBOOK = 4096
SEMANTIC_CODEBOOK = 8192

STRUCTURE_TOKENS = [
    "<|task_vc|>", "<|task_tts|>", "<|task_asr|>", "<|task_s2s|>", "<|task_t2s|>", "<|task_cap|>",
    "<|task_understand|>", "<|task_controllable_tts|>", "<|task_prompt_tts|>", "<|task_edit|>",
    "<|start_content|>", "<|start_style_label|>", "<|start_style_prompt|>", "<|start_acoustic_token|>",
    "<|start_global_token|>", "<|start_semantic_token|>", "<|end_content|>", "<|end_style_label|>",
    "<|end_style_prompt|>", "<|end_acoustic_token|>", "<|end_global_token|>", "<|end_semantic_token|>",
]  # fmt: skip

SPARK_ADDED_TOKENS: list[str] = (
    [f"<|bicodec_global_{i}|>" for i in range(GLOBAL_CODEBOOK)]
    + [f"<|bicodec_semantic_{i}|>" for i in range(SEMANTIC_CODEBOOK)]
    + [f"<|pitch_value_{i}|>" for i in range(1001)]
    + [f"<|pitch_var_value_{i}|>" for i in range(11)]
    + [f"<|pitch_label_{i}|>" for i in range(5)]
    + [f"<|pitch_var_label_{i}|>" for i in range(5)]
    + [f"<|speed_value_{i}|>" for i in range(11)]
    + [f"<|speed_label_{i}|>" for i in range(5)]
    + [f"<|loudness_value_{i}|>" for i in range(31)]
    + [f"<|loudness_label_{i}|>" for i in range(5)]
    + [f"<|age_{i}|>" for i in range(5)]
    + [f"<|gender_{i}|>" for i in range(3)]
    + [f"<|emotion_{i}|>" for i in range(101)]
    + STRUCTURE_TOKENS
)
"""The 13,493 tokens Spark adds to Qwen2.5's vocabulary, in the release's order."""

QWEN_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


class TokenIds(Protocol):
    """What the vocabulary needs of a tokenizer (``tokenizers.Tokenizer`` has it), without
    importing one here."""

    def token_to_id(self, token: str) -> int | None: ...


class _Lookup:
    def __init__(self, tokenizer: TokenIds) -> None:
        self._tok = tokenizer

    def __call__(self, token: str) -> int:
        tid = self._tok.token_to_id(token)
        if tid is None:
            raise ModelLoadError(f"the Spark tokenizer has no token {token!r}; is this a Spark-TTS LLM directory?")
        return int(tid)

    def family(self, fmt: str, count: int) -> int:
        """Id of ``fmt.format(0)``, checking the family is ``count`` consecutive ids (so the
        output grammar can use ranges)."""
        first, last = self(fmt.format(0)), self(fmt.format(count - 1))
        if last - first != count - 1:
            raise ModelLoadError(f"tokens {fmt.format(0)}..{fmt.format(count - 1)} are not consecutive ids in the tokenizer")
        return first


@dataclass(frozen=True)
class SparkVocab:
    """Every id the Spark prompts and grammar need, looked up by string once at load."""

    global0: int
    semantic0: int
    pitch_value0: int
    speed_value0: int
    pitch_label0: int
    speed_label0: int
    gender0: int
    task_tts: int
    task_create: int
    start_content: int
    end_content: int
    start_style: int
    end_style: int
    start_acoustic: int
    end_acoustic: int
    start_global: int
    end_global: int
    start_semantic: int
    end_semantic: int
    eos: int

    @classmethod
    def from_tokenizer(cls, tokenizer: TokenIds) -> SparkVocab:
        t = _Lookup(tokenizer)
        return cls(
            global0=t.family("<|bicodec_global_{}|>", GLOBAL_CODEBOOK),
            semantic0=t.family("<|bicodec_semantic_{}|>", SEMANTIC_CODEBOOK),
            pitch_value0=t.family("<|pitch_value_{}|>", 1001),
            speed_value0=t.family("<|speed_value_{}|>", 11),
            pitch_label0=t.family("<|pitch_label_{}|>", 5),
            speed_label0=t.family("<|speed_label_{}|>", 5),
            gender0=t.family("<|gender_{}|>", 2),
            task_tts=t("<|task_tts|>"),
            task_create=t("<|task_controllable_tts|>"),
            start_content=t("<|start_content|>"),
            end_content=t("<|end_content|>"),
            start_style=t("<|start_style_label|>"),
            end_style=t("<|end_style_label|>"),
            start_acoustic=t("<|start_acoustic_token|>"),
            end_acoustic=t("<|end_acoustic_token|>"),
            start_global=t("<|start_global_token|>"),
            end_global=t("<|end_global_token|>"),
            start_semantic=t("<|start_semantic_token|>"),
            end_semantic=t("<|end_semantic_token|>"),
            eos=t("<|im_end|>"),
        )

    @property
    def stop_ids(self) -> frozenset[int]:
        return frozenset({self.eos, self.end_semantic})

    def semantic_range(self) -> tuple[int, int]:
        return (self.semantic0, self.semantic0 + SEMANTIC_CODEBOOK)

    def global_range(self) -> tuple[int, int]:
        return (self.global0, self.global0 + GLOBAL_CODEBOOK)

    # ---------------------------------------------------------------- prompts (token ids)
    def create_prompt(self, text_ids: list[int], gender: int, pitch: int, speed: int) -> list[int]:
        return [
            self.task_create, self.start_content, *text_ids, self.end_content,
            self.start_style, self.gender0 + gender, self.pitch_label0 + pitch, self.speed_label0 + speed, self.end_style,
        ]  # fmt: skip

    def frozen_prompt(self, text_ids: list[int], gender: int, pitch: int, speed: int, acoustic: Sequence[int], global_ids: Sequence[int]) -> list[int]:
        pitch_value, speed_value = acoustic
        return [
            *self.create_prompt(text_ids, gender, pitch, speed),
            self.start_acoustic, self.pitch_value0 + pitch_value, self.speed_value0 + speed_value, self.end_acoustic,
            self.start_global, *(self.global0 + g for g in global_ids), self.end_global,
        ]  # fmt: skip

    def clone_prompt(self, text_ids: list[int], global_ids: Sequence[int], semantic_ids: Sequence[int] | None, style: tuple[int, int] | None) -> list[int]:
        ids = [self.task_tts, self.start_content, *text_ids, self.end_content]
        if style is not None:  # optional pitch/speed labels for a cloned voice (best effort)
            ids += [self.start_style, self.pitch_label0 + style[0], self.speed_label0 + style[1], self.end_style]
        ids += [self.start_global, *(self.global0 + g for g in global_ids), self.end_global]
        if semantic_ids is not None:
            ids += [self.start_semantic, *(self.semantic0 + s for s in semantic_ids)]
        return ids


# ---------------------------------------------------------------- output grammar
@dataclass(frozen=True)
class _Step:
    ranges: Ranges
    count: int


class SparkGrammar(TokenConstraint):
    """The model's output grammar, phase by phase, as id ranges.

    ``mode`` is where the prompt leaves off: ``"create"`` (acoustic values, 32 globals, then
    semantics), ``"after_globals"`` (``<|start_semantic_token|>`` then semantics) or
    ``"semantic"`` (semantics straight away, the prompt already opened them). The semantic phase
    accepts a stop token only after at least one semantic token, so every output decodes.
    """

    def __init__(self, vocab: SparkVocab, mode: str) -> None:
        v = vocab

        def one(tid: int) -> Ranges:
            return ((tid, tid + 1),)

        steps: list[_Step] = []
        if mode == "create":
            steps += [
                _Step(one(v.start_acoustic), 1),
                _Step(((v.pitch_value0, v.pitch_value0 + 1001),), 1),
                _Step(((v.speed_value0, v.speed_value0 + 11),), 1),
                _Step(one(v.end_acoustic), 1),
                _Step(one(v.start_global), 1),
                _Step((v.global_range(),), NUM_GLOBAL),
                _Step(one(v.end_global), 1),
            ]
        if mode in ("create", "after_globals"):
            steps.append(_Step(one(v.start_semantic), 1))
        elif mode != "semantic":
            raise ValueError(f"unknown grammar mode {mode!r}")
        self._steps = steps
        self._prefix = sum(s.count for s in steps)
        self._semantic: Ranges = (v.semantic_range(),)
        stops = sorted(v.stop_ids)
        self._semantic_or_stop: Ranges = tuple(sorted([v.semantic_range(), *((s, s + 1) for s in stops)]))
        self._stops = v.stop_ids

    @property
    def prefix_length(self) -> int:
        """Tokens before the first semantic token."""
        return self._prefix

    def allowed(self, generated: Sequence[int]) -> Ranges | None:
        i = len(generated)
        for step in self._steps:
            if i < step.count:
                return step.ranges
            i -= step.count
        return self._semantic if i == 0 else self._semantic_or_stop

    def is_complete(self, generated: Sequence[int]) -> bool:
        return len(generated) > self._prefix + 1 and generated[-1] in self._stops

    def vocabulary(self) -> Ranges:
        return merge_ranges([*(r for step in self._steps for r in step.ranges), *self._semantic_or_stop])
