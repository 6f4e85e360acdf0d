"""The trained counterfactual generator (AutoCAD): human-pair alignment, training examples,
the NLL + unlikelihood loss, and the LoRA training loop with its cache."""
