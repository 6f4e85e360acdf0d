"""Explain: which words make the classifier predict an example's label.

* :mod:`cda.explain.classifier` -- the LoRA-tuned task classifier (train, cache, save, load)
* :mod:`cda.explain.attribution` -- gradient x input, integrated gradients, occlusion
* :mod:`cda.explain.spans` -- sub-word scores to spaCy words/noun chunks to rationale spans
* :mod:`cda.explain.stage` -- :class:`~cda.explain.stage.ExplainStage`, the pipeline stage

Nothing is imported here, so importing the stage does not pull in torch or transformers.
"""
