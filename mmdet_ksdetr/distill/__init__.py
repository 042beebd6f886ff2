"""MMRazor distillation algorithms and losses for DETRs (registered in mmrazor.registry)."""
