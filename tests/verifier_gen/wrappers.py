"""Reasoning wrappers: how reasoning models lay out thinking and final answer.

WRAPPERS is a list of (name, wrap) with wrap(final_text, reasoning_text) -> the
whole response a model of that family writes. A verifier must give the same
verdict for every wrapper as for final_text alone. CUT_WRAPPERS is a list of
(name, cut) with cut(reasoning_text) -> a response that stopped inside its
reasoning: it has no final answer, whatever the reasoning says.

A new format is one line.
"""

HARMONY_ANALYSIS = "<|start|>assistant<|channel|>analysis<|message|>"

WRAPPERS = [
    ("none", lambda final, reasoning: final),
    ("reasoning_content", lambda final, reasoning: final),  # the API returned the reasoning apart
    ("think", lambda final, reasoning: f"<think>\n{reasoning}\n</think>\n\n{final}"),
    ("think-open-in-template", lambda final, reasoning: f"{reasoning}\n</think>\n\n{final}"),
    ("think-empty", lambda final, reasoning: f"<think>\n\n</think>\n\n{final}"),
    ("think-upper", lambda final, reasoning: f"<THINK>{reasoning}</THINK>{final}"),
    ("thinking", lambda final, reasoning: f"<thinking>{reasoning}</thinking>\n{final}"),
    ("reasoning-tag", lambda final, reasoning: f"<reasoning>\n{reasoning}\n</reasoning>\n{final}"),
    ("thought-tag", lambda final, reasoning: f"<thought>{reasoning}</thought>\n\n{final}"),
    ("think-answer", lambda final, reasoning: f"<think>{reasoning}</think>\n<answer>\n{final}\n</answer>"),
    ("harmony", lambda final, reasoning: f"<|channel|>analysis<|message|>{reasoning}<|end|>"
        f"<|start|>assistant<|channel|>final<|message|>{final}<|return|>"),
    ("harmony-no-return", lambda final, reasoning: f"{HARMONY_ANALYSIS}{reasoning}<|end|>"
        f"<|start|>assistant<|channel|>final<|message|>{final}"),
    ("harmony-stripped", lambda final, reasoning: f"analysis{reasoning}assistantfinal{final}"),
    ("kimi", lambda final, reasoning: f"\u25c1think\u25b7{reasoning}\u25c1/think\u25b7{final}"),
    ("command-a", lambda final, reasoning: f"<|START_THINKING|>{reasoning}<|END_THINKING|>"
        f"<|START_RESPONSE|>{final}<|END_RESPONSE|>"),
    ("magistral", lambda final, reasoning: f"[THINK]{reasoning}[/THINK]\n{final}"),
    ("seed-oss", lambda final, reasoning: f"<seed:think>{reasoning}</seed:think>\n{final}"),
    ("open-thoughts", lambda final, reasoning: f"<|begin_of_thought|>\n\n{reasoning}\n\n<|end_of_thought|>"
        f"\n\n<|begin_of_solution|>\n\n{final}\n\n<|end_of_solution|>"),
    ("sections", lambda final, reasoning: f"Thinking:\n{reasoning}\n\nFinal answer:\n{final}"),
    ("sections-markdown", lambda final, reasoning: f"## Reasoning\n{reasoning}\n\n## Final answer\n{final}"),
]

CUT_WRAPPERS = [
    ("think-unclosed", lambda reasoning: f"<think>\n{reasoning}"),
    ("think-nothing-after", lambda reasoning: f"<think>{reasoning}</think>"),
    ("think-open-in-template-nothing-after", lambda reasoning: f"{reasoning}\n</think>\n"),
    ("harmony-cut", lambda reasoning: f"<|channel|>analysis<|message|>{reasoning}"),
    ("harmony-cut-after-end", lambda reasoning: f"{HARMONY_ANALYSIS}{reasoning}<|end|>"),
    ("kimi-cut", lambda reasoning: f"\u25c1think\u25b7{reasoning}"),
    ("command-a-cut", lambda reasoning: f"<|START_THINKING|>{reasoning}"),
    ("magistral-cut", lambda reasoning: f"[THINK]{reasoning}"),
    ("seed-oss-cut", lambda reasoning: f"<seed:think>{reasoning}"),
    ("open-thoughts-cut", lambda reasoning: f"<|begin_of_thought|>\n{reasoning}"),
    ("think-answer-empty", lambda reasoning: f"<think>{reasoning}</think><answer></answer>"),
    ("sections-empty-final", lambda reasoning: f"Thinking:\n{reasoning}\n\nFinal answer:\n"),
]
