"""Spark prompt layouts and the output grammar, on a vocabulary whose ids differ from the real
release's (ids must be looked up by string, never assumed)."""

import random

import pytest

from fasttts.errors import ModelLoadError
from fasttts.models.spark.tokens import NUM_GLOBAL, SPARK_ADDED_TOKENS, SparkGrammar, SparkVocab


class FakeTokenizer:
    """Token strings → ids, with the added tokens placed after a small base vocabulary."""

    def __init__(self, base: int = 300, tokens=SPARK_ADDED_TOKENS):
        self.ids = {t: base + 3 + i for i, t in enumerate(tokens)}
        self.ids.update({"<|endoftext|>": base, "<|im_start|>": base + 1, "<|im_end|>": base + 2})

    def token_to_id(self, token):
        return self.ids.get(token)


@pytest.fixture
def vocab():
    return SparkVocab.from_tokenizer(FakeTokenizer())


def test_release_added_token_count():
    assert len(SPARK_ADDED_TOKENS) == 13493 == len(set(SPARK_ADDED_TOKENS))


def test_ids_come_from_the_tokenizer(vocab):
    tok = FakeTokenizer()
    assert vocab.global0 == tok.ids["<|bicodec_global_0|>"]
    assert vocab.semantic0 == tok.ids["<|bicodec_semantic_0|>"]
    assert vocab.eos == tok.ids["<|im_end|>"]
    other = SparkVocab.from_tokenizer(FakeTokenizer(base=151_662))  # real-release-like offset
    assert other.global0 - vocab.global0 == 151_662 - 300


def test_missing_or_scattered_tokens_are_load_errors():
    tok = FakeTokenizer()
    del tok.ids["<|start_global_token|>"]
    with pytest.raises(ModelLoadError, match="start_global_token"):
        SparkVocab.from_tokenizer(tok)
    tok = FakeTokenizer()
    tok.ids["<|bicodec_semantic_8191|>"] = 5
    with pytest.raises(ModelLoadError, match="not consecutive"):
        SparkVocab.from_tokenizer(tok)


def test_create_prompt_layout(vocab):
    text = [11, 12, 13]
    ids = vocab.create_prompt(text, gender=1, pitch=4, speed=0)
    tok = FakeTokenizer().ids
    assert ids == [
        tok["<|task_controllable_tts|>"], tok["<|start_content|>"], 11, 12, 13, tok["<|end_content|>"],
        tok["<|start_style_label|>"], tok["<|gender_1|>"], tok["<|pitch_label_4|>"], tok["<|speed_label_0|>"],
        tok["<|end_style_label|>"],
    ]  # fmt: skip


def test_clone_prompt_layouts(vocab):
    tok = FakeTokenizer().ids
    globals_ = list(range(NUM_GLOBAL))
    no_text = vocab.clone_prompt([7, 8], globals_, None, None)
    assert no_text[:4] == [tok["<|task_tts|>"], tok["<|start_content|>"], 7, 8]
    assert no_text[4] == tok["<|end_content|>"] and no_text[5] == tok["<|start_global_token|>"]
    assert no_text[6 : 6 + NUM_GLOBAL] == [tok[f"<|bicodec_global_{g}|>"] for g in globals_]
    assert no_text[-1] == tok["<|end_global_token|>"]
    with_text = vocab.clone_prompt([7, 8], globals_, [5, 9], None)
    assert with_text[len(no_text) :] == [tok["<|start_semantic_token|>"], tok["<|bicodec_semantic_5|>"], tok["<|bicodec_semantic_9|>"]]


def test_frozen_prompt_appends_the_voice_span(vocab):
    tok = FakeTokenizer().ids
    ids = vocab.frozen_prompt([1], 0, 2, 2, (345, 7), list(range(NUM_GLOBAL)))
    head = vocab.create_prompt([1], 0, 2, 2)
    assert ids[: len(head)] == head
    assert ids[len(head) : len(head) + 4] == [
        tok["<|start_acoustic_token|>"],
        tok["<|pitch_value_345|>"],
        tok["<|speed_value_7|>"],
        tok["<|end_acoustic_token|>"],
    ]
    assert ids[-1] == tok["<|end_global_token|>"] and len(ids) == len(head) + 4 + NUM_GLOBAL + 2


def _walk(grammar, steps, rng):
    """Sample a random output that obeys the grammar; returns the tokens."""
    out = []
    for _ in range(steps):
        ranges = grammar.allowed(out)
        lo, hi = rng.choice(ranges)
        out.append(rng.randrange(lo, hi))
        if grammar.is_complete(out):
            break
    return out


@pytest.mark.parametrize("seed", range(20))
def test_create_grammar_yields_well_formed_output(vocab, seed):
    rng = random.Random(seed)
    grammar = SparkGrammar(vocab, "create")
    out = _walk(grammar, 200, rng)
    tok = FakeTokenizer().ids
    assert out[0] == tok["<|start_acoustic_token|>"]
    assert vocab.pitch_value0 <= out[1] <= vocab.pitch_value0 + 1000
    assert vocab.speed_value0 <= out[2] <= vocab.speed_value0 + 10
    assert out[3:5] == [tok["<|end_acoustic_token|>"], tok["<|start_global_token|>"]]
    assert all(vocab.global0 <= g < vocab.global0 + 4096 for g in out[5 : 5 + NUM_GLOBAL])
    assert out[5 + NUM_GLOBAL : 7 + NUM_GLOBAL] == [tok["<|end_global_token|>"], tok["<|start_semantic_token|>"]]
    body = out[7 + NUM_GLOBAL :]
    semantic = [t for t in body if vocab.semantic0 <= t < vocab.semantic0 + 8192]
    assert len(semantic) >= 1, "a stop token came before any semantic token"
    stops = [t for t in body if t in vocab.stop_ids]
    assert len(stops) <= 1 and (not stops or body[-1] in vocab.stop_ids)


def test_semantic_grammar_refuses_an_immediate_stop(vocab):
    grammar = SparkGrammar(vocab, "semantic")
    assert grammar.allowed([]) == (vocab.semantic_range(),)
    assert any(lo <= vocab.eos < hi for lo, hi in grammar.allowed([vocab.semantic0]))
    assert not grammar.is_complete([vocab.semantic0])
    assert grammar.is_complete([vocab.semantic0, vocab.eos])


def test_after_globals_grammar_opens_semantics_first(vocab):
    grammar = SparkGrammar(vocab, "after_globals")
    assert grammar.allowed([]) == ((vocab.start_semantic, vocab.start_semantic + 1),)
    assert grammar.allowed([vocab.start_semantic]) == (vocab.semantic_range(),)
