"""Explain: which words make the classifier predict an example's label.

* :mod:`cda.explain.classifier` -- the task classifier as the runner gets it: a given folder, or
  a LoRA one trained and cached (``load_or_train_classifier``); the public names of the next
  three modules can be imported from it
* :mod:`cda.explain.classifier_model` -- the model wrapper (encode, ``predict_proba``, ``attribute``, save)
* :mod:`cda.explain.classifier_loading` -- the backbone, and the classifier folder formats it loads
* :mod:`cda.explain.classifier_training` -- the LoRA training loop and its cache key
* :mod:`cda.explain.attribution` -- gradient x input, integrated gradients, occlusion
* :mod:`cda.explain.spans` -- sub-word scores to spaCy words/noun chunks to rationale spans
* :mod:`cda.explain.stage` -- :class:`~cda.explain.stage.ExplainStage`, the pipeline stage

Nothing is imported here, so importing the stage does not pull in torch or transformers.
"""
