"""Fakes for testing pipeline plumbing without models. Real models are tested in tests/integration."""

from __future__ import annotations

import re

from cda.protocols import Attribution, Generation, GeneratorCapabilities, SamplingSettings, TokenScore

POSITIVE = {"good", "great", "wonderful", "best", "love", "loved", "excellent", "fun", "brilliant"}
NEGATIVE = {"bad", "awful", "worst", "boring", "hate", "hated", "terrible", "dull", "poor"}


class FakeClassifier:
    """Sentiment by word lists: P(Positive) grows with positive words minus negative ones."""

    name = "fake-classifier"

    def __init__(self, labels: tuple[str, str] = ("Negative", "Positive")) -> None:
        self.labels = list(labels)

    def _score(self, text: str) -> int:
        words = re.findall(r"\w+", text.lower())
        return sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)

    def predict_proba(self, inputs: list[dict[str, str]]) -> list[dict[str, float]]:
        out = []
        for segments in inputs:
            s = self._score(" ".join(segments.values()))
            p = 0.9 if s > 0 else 0.1 if s < 0 else 0.5
            out.append({self.labels[0]: 1 - p, self.labels[1]: p})
        return out

    def attribute(self, inputs: list[dict[str, str]], targets: list[str], method: str) -> list[Attribution]:
        out = []
        for segments, target in zip(inputs, targets):
            sign = 1 if target == self.labels[1] else -1
            tokens = []
            for name, text in segments.items():
                for m in re.finditer(r"\w+", text):
                    w = m.group().lower()
                    score = sign * ((w in POSITIVE) - (w in NEGATIVE)) + 0.01
                    tokens.append(TokenScore(name, m.start(), m.end(), float(score)))
            out.append(Attribution(target, tokens, {k: len(v) for k, v in segments.items()}))
        return out


class FakeGenerator:
    """Answers every blank with a fixed word list in turn; records the prompts it saw."""

    name = "fake:generator"
    capabilities = GeneratorCapabilities()

    def __init__(self, answers: list[str] | None = None) -> None:
        self.answers = answers or ["great", "wonderful", "bad", "awful"]
        self.prompts: list[str] = []
        self.loads = 0

    def load(self) -> None:
        self.loads += 1

    def generate(self, prompts: list[str], sampling: SamplingSettings) -> list[Generation]:
        self.prompts.extend(prompts)
        out = []
        for prompt in prompts:
            blanks = sorted(set(re.findall(r"\[BLANK(\d+)\]", prompt)), key=int)
            texts = []
            for k in range(sampling.n):
                word = self.answers[k % len(self.answers)]
                texts.append("\n".join(f"[BLANK{b}]: {word}" for b in blanks) or word)
            out.append(Generation(texts))
        return out
