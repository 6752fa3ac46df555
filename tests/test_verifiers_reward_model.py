"""The `reward-model` verifier with a small randomly initialised
LlamaForSequenceClassification that the test builds and saves itself."""

import random

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rsr.verification import Scorer  # noqa: E402
from rsr.verifiers import get_verifier  # noqa: E402
from rsr.verifiers.reward_model import render  # noqa: E402

WORDS = "the a is what 2+2 4 5 answer user assistant : . ? yes no hello world think".split()
TEMPLATE = "{% for m in messages %}<s> {{ m['role'] }} : {{ m['content'] }} </s> {% endfor %}"


@pytest.fixture(scope="module")
def reward_model_path(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    for word in WORDS:
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", bos_token="<s>",
                                        eos_token="</s>", unk_token="<unk>")
    tokenizer.chat_template = TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
                         num_labels=1, pad_token_id=0)
    path = tmp_path_factory.mktemp("rm")
    LlamaForSequenceClassification(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def rollouts(count, seed=0):
    rng = random.Random(seed)
    prompt = [{"role": "user", "content": "what is 2+2 ?"}]
    return [(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40))), {}, prompt)
            for _ in range(count)]


def test_reward_scores_are_deterministic_real_numbers(reward_model_path):
    items = rollouts(6)
    first = get_verifier("reward-model", model=reward_model_path).check_many(items)
    second = get_verifier("reward-model", model=reward_model_path).check_many(items)
    assert [v.score for v in first] == [v.score for v in second]
    assert all(isinstance(v.score, float) for v in first)
    assert len({round(v.score, 6) for v in first}) > 1  # different texts, different scores
    assert all(v.passed is None and v.details["reason"] == "no threshold: score only" for v in first)


def test_batched_and_unbatched_scores_agree_and_stay_on_their_rollout(reward_model_path):
    items = rollouts(13, seed=1)
    one_by_one = [get_verifier("reward-model", model=reward_model_path, batch_size=1).check_many([item])[0].score
                  for item in items]
    batched = get_verifier("reward-model", model=reward_model_path, batch_size=4).check_many(items)
    # Lengths differ, so sorting by length reorders the batch; each score must
    # still come back to the rollout it belongs to.
    lengths = [v.details["tokens"] for v in batched]
    assert lengths != sorted(lengths)
    assert [v.score for v in batched] == pytest.approx(one_by_one, abs=1e-5)
    reversed_scores = get_verifier("reward-model", model=reward_model_path, batch_size=4).check_many(items[::-1])
    assert [v.score for v in reversed_scores] == pytest.approx([v.score for v in batched][::-1], abs=1e-5)


def test_threshold_decides_pass(reward_model_path):
    items = rollouts(8, seed=2)
    scores = [v.score for v in get_verifier("reward-model", model=reward_model_path).check_many(items)]
    middle = sorted(scores)[4]
    verifier = get_verifier("reward-model", model=reward_model_path, threshold=middle)
    same = get_verifier("reward-model", model=reward_model_path, threshold=middle)
    other = get_verifier("reward-model", model=reward_model_path, threshold=middle + 1)
    assert verifier.name == same.name != other.name
    assert verifier.name.startswith("reward-model:model=") and "threshold=" in verifier.name
    with Scorer(verifier) as scorer:
        verdicts = scorer.score(items)
    assert [v.passed for v in verdicts] == [s >= middle for s in scores]


def test_chat_template_is_applied_and_reasoning_stripped(reward_model_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(reward_model_path)
    text = render(tokenizer, [{"role": "user", "content": "what is 2+2 ?"}], "4")
    assert text == "<s> user : what is 2+2 ? </s> <s> assistant : 4 </s> "
    verifier = get_verifier("reward-model", model=reward_model_path)
    plain = verifier.check_many([("4", {}, [{"role": "user", "content": "what is 2+2 ?"}])])[0]
    thinking = verifier.check_many([("<think>5 5 5</think>4", {}, [{"role": "user", "content": "what is 2+2 ?"}])])[0]
    assert plain.score == thinking.score
